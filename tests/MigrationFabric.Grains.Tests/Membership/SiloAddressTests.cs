using MigrationFabric.Grains.Membership;
using Xunit;

namespace MigrationFabric.Grains.Tests.Membership;

/// <summary>Silo identity: text form, validation, equality and order.</summary>
public sealed class SiloAddressTests
{
    [Theory]
    [InlineData("127.0.0.1", 11111, 1L, "127.0.0.1:11111@1")]
    [InlineData("node-a.example", 0, 638999999999999999L, "node-a.example:0@638999999999999999")]
    [InlineData("::1", 5000, 42L, "[::1]:5000@42")]
    public void Text_form_round_trips(string host, int port, long generation, string text)
    {
        var silo = new SiloAddress(host, port, generation);
        Assert.Equal(text, silo.ToString());
        Assert.Equal(silo, SiloAddress.Parse(text));
        Assert.Equal(host, SiloAddress.Parse(text).Host);
    }

    [Theory]
    [InlineData("")]
    [InlineData("host")]
    [InlineData("host:1")]
    [InlineData("host@1")]
    [InlineData("host:x@1")]
    [InlineData("host:1@x")]
    [InlineData("host:1@0")]
    [InlineData("host:70000@1")]
    [InlineData(":1@1")]
    public void Bad_text_is_a_format_error_naming_the_text(string text)
    {
        var e = Assert.Throws<FormatException>(() => SiloAddress.Parse(text));
        Assert.Contains($"'{text}'", e.Message);
    }

    [Fact]
    public void Constructor_rejects_bad_parts()
    {
        Assert.Throws<ArgumentException>(() => new SiloAddress(" ", 1, 1));
        Assert.Throws<ArgumentException>(() => new SiloAddress("a@b", 1, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new SiloAddress("a", -1, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new SiloAddress("a", 1, 0));
    }

    [Fact]
    public void Equality_ignores_host_case_but_not_generation()
    {
        var a = new SiloAddress("Node", 1, 5);
        Assert.Equal(a, new SiloAddress("node", 1, 5));
        Assert.Equal(a.GetHashCode(), new SiloAddress("node", 1, 5).GetHashCode());
        Assert.NotEqual(a, new SiloAddress("node", 1, 6));
        Assert.True(a.IsSameEndpoint(new SiloAddress("node", 1, 6)));
        Assert.False(a.IsSameEndpoint(new SiloAddress("node", 2, 5)));
    }

    [Fact]
    public void Order_is_endpoint_then_generation()
    {
        var list = new[] { new SiloAddress("b", 1, 1), new SiloAddress("a", 2, 1), new SiloAddress("a", 1, 9), new SiloAddress("a", 1, 3) };
        Assert.Equal(["a:1@3", "a:1@9", "a:2@1", "b:1@1"], list.Order().Select(s => s.ToString()));
    }

    [Fact]
    public void Status_moves_forward_only()
    {
        Assert.True(SiloStatus.Joining.CanMoveTo(SiloStatus.Active));
        Assert.True(SiloStatus.Active.CanMoveTo(SiloStatus.Dead));
        Assert.False(SiloStatus.Active.CanMoveTo(SiloStatus.Joining));
        Assert.False(SiloStatus.Dead.CanMoveTo(SiloStatus.Dead));
        Assert.True(SiloStatus.ShuttingDown.IsAlive());
        Assert.False(SiloStatus.Dead.IsAlive());
    }
}
