using MigrationFabric.Grains.Invocation;
using MigrationFabric.Grains.Membership;
using MigrationFabric.Grains.Messaging;
using MigrationFabric.Grains.Runtime;
using MigrationFabric.Grains.Serialization;
using Xunit;

namespace MigrationFabric.Grains.Tests.Runtime;

public interface IUnregisteredGrain : IGrainWithStringKey
{
    Task Ping();
}

public sealed class ErrorPathTests
{
    [Fact]
    public async Task Calling_an_interface_no_silo_serves_names_the_interface()
    {
        await using var cluster = new TestCluster();
        await cluster.StartAsync(1);
        var e = await Assert.ThrowsAsync<GrainRoutingException>(() => cluster.Silos[0].GrainFactory.GetGrain<IUnregisteredGrain>("x").Ping());
        Assert.Contains(typeof(IUnregisteredGrain).FullName!, e.Message);
    }

    [Fact]
    public void Registering_an_interface_twice_is_refused()
    {
        var ex = Assert.Throws<InvalidOperationException>(() => new TestCluster().NewBuilder().AddGrain<ICounterGrain, CounterGrain>(_ => new CounterGrain(new())).Build());
        Assert.Contains("registered twice", ex.Message);
    }

    [Fact]
    public async Task An_activation_whose_construction_throws_fails_its_calls_with_the_cause_named()
    {
        var network = new InProcessSiloNetwork();
        var silo = new SiloBuilder()
            .UseTransport(network.CreateTransport())
            .UseMembershipTable(new InMemoryMembershipTable(), TestCluster.FastMembership())
            .AddGrain<IPersistentCounterGrain, PersistentCounterGrain>(ctx => new PersistentCounterGrain(ctx.GetPersistentState<CounterState>("counter", "nope")))
            .Build();
        await silo.StartAsync(CancellationToken.None);
        try
        {
            var e = await Assert.ThrowsAsync<InvalidOperationException>(() => silo.GrainFactory.GetGrain<IPersistentCounterGrain>("p").Get());
            Assert.Contains("'nope'", e.Message);
            Assert.Contains("Activation of grain", e.Message);
            Assert.Equal(0, silo.ActivationCount);
        }
        finally
        {
            await silo.StopAsync(CancellationToken.None);
        }
    }

    [Fact]
    public void Options_are_validated_with_the_option_named()
    {
        Assert.Contains("RequestTimeout", Assert.Throws<ArgumentException>(() => new SiloOptions { RequestTimeout = TimeSpan.Zero }.Validate()).Message);
        Assert.Contains("VirtualNodesPerSilo", Assert.Throws<ArgumentException>(() => new SiloOptions { VirtualNodesPerSilo = 0 }.Validate()).Message);
        Assert.Contains("CollectionAge", Assert.Throws<ArgumentException>(() => new SiloOptions { CollectionAge = TimeSpan.FromSeconds(-1) }.Validate()).Message);
        Assert.Contains("Port", Assert.Throws<ArgumentException>(() => new SiloOptions { Port = 70000 }.Validate()).Message);
        Assert.Contains("RequestTimeout", Assert.Throws<ArgumentException>(() => new ClusterClientOptions { RequestTimeout = TimeSpan.Zero }.Validate()).Message);
        Assert.Contains("MaxMessageSize", Assert.Throws<ArgumentException>(() => new RpcSiloTransportOptions { MaxMessageSize = 1 }.Validate()).Message);
        Assert.Contains("transport", Assert.Throws<InvalidOperationException>(() => new SiloBuilder().Build()).Message);
    }

    [Fact]
    public void Truncated_or_corrupt_messages_fail_decoding_with_a_clear_error()
    {
        var w = new GrainWriter();
        GrainCodec.Write(w, "hello");
        GrainCodec.Write(w, 42);
        var bytes = w.WrittenMemory.ToArray();
        var truncated = Assert.Throws<GrainSerializationException>(() => { var r = new GrainReader(bytes.AsSpan(0, 3)); GrainCodec.Read<string>(ref r); });
        Assert.Contains("claims", truncated.Message);
        var bad = Assert.Throws<GrainSerializationException>(() => { var r = new GrainReader([5]); GrainCodec.Read<bool>(ref r); });
        Assert.Contains("bool", bad.Message);
        var json = new GrainWriter();
        json.WriteBytes("{not json"u8);
        var badJson = Assert.Throws<GrainSerializationException>(() => { var r = new GrainReader(json.WrittenMemory.Span); GrainCodec.Read<EchoRecord>(ref r); });
        Assert.Contains("EchoRecord", badJson.Message);
    }

    [Fact]
    public async Task A_silo_answers_garbage_requests_with_an_error_response_not_a_crash()
    {
        await using var cluster = new TestCluster(() => new RpcSiloTransport());
        await cluster.StartAsync(1);
        await using var raw = new RpcSiloTransport();
        var target = cluster.Silos[0].Address;
        foreach (var garbage in new byte[][] { [], [99], [1, 200, 200, 200], [3, 5, (byte)'a'] })
        {
            var response = await raw.SendAsync(target, garbage, CancellationToken.None);
            Assert.Equal(1, response.Span[0]); // ResponseStatus.Error, with a message
        }
        // The silo still serves.
        Assert.Equal(1, await cluster.Silos[0].GrainFactory.GetGrain<ICounterGrain>("after-garbage").Add(1));
    }

    [Fact]
    public void Values_of_every_supported_kind_round_trip_through_the_codec()
    {
        var w = new GrainWriter();
        var guid = Guid.NewGuid();
        var when = new DateTimeOffset(2026, 11, 21, 23, 0, 0, TimeSpan.FromHours(2));
        var frame = new Messaging.Wire.SiloFrame { CallId = 7, Payload = Google.Protobuf.ByteString.CopyFromUtf8("pb") };
        GrainCodec.Write(w, -5L);
        GrainCodec.Write(w, ulong.MaxValue);
        GrainCodec.Write(w, 3.25);
        GrainCodec.Write<string?>(w, null);
        GrainCodec.Write<byte[]?>(w, null);
        GrainCodec.Write(w, guid);
        GrainCodec.Write(w, TimeSpan.FromMilliseconds(1234));
        GrainCodec.Write(w, when);
        GrainCodec.Write(w, frame);
        GrainCodec.Write(w, new List<int> { 1, 2 });
        GrainCodec.Write(w, DayOfWeek.Friday);
        var r = new GrainReader(w.WrittenMemory.Span);
        Assert.Equal(-5L, GrainCodec.Read<long>(ref r));
        Assert.Equal(ulong.MaxValue, GrainCodec.Read<ulong>(ref r));
        Assert.Equal(3.25, GrainCodec.Read<double>(ref r));
        Assert.Null(GrainCodec.Read<string?>(ref r));
        Assert.Null(GrainCodec.Read<byte[]?>(ref r));
        Assert.Equal(guid, GrainCodec.Read<Guid>(ref r));
        Assert.Equal(TimeSpan.FromMilliseconds(1234), GrainCodec.Read<TimeSpan>(ref r));
        Assert.Equal(when, GrainCodec.Read<DateTimeOffset>(ref r));
        Assert.Equal(frame, GrainCodec.Read<Messaging.Wire.SiloFrame>(ref r));
        Assert.Equal([1, 2], GrainCodec.Read<List<int>>(ref r));
        Assert.Equal(DayOfWeek.Friday, GrainCodec.Read<DayOfWeek>(ref r));
        Assert.Equal(0, r.Remaining);
    }

    [Fact]
    public void GrainId_and_method_ids_reject_bad_input()
    {
        Assert.Throws<ArgumentException>(() => new GrainId("a/b", "k"));
        Assert.Throws<FormatException>(() => GrainId.Parse("nokey"));
        Assert.Equal(new GrainId("T", "k/with/slash"), GrainId.Parse("T/k/with/slash"));
        var descriptor = new GrainInterfaceRegistry().Get(typeof(ICounterGrain));
        Assert.Contains("no method with id 99", Assert.Throws<ArgumentOutOfRangeException>(() => descriptor.GetMethod(99)).Message);
        Assert.Throws<ArgumentException>(() => new GrainInterfaceRegistry().Get(typeof(IDisposable)));
    }
}
