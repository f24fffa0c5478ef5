using MigrationFabric.Rpc.Health.V1;
using MigrationFabric.Rpc.Server;
using MigrationFabric.Tests.Echo.V1;

namespace MigrationFabric.Rpc.Tests;

public sealed class RegistrationTests
{
    [Fact]
    public void Methods_from_a_descriptor_take_their_kind_from_the_proto()
    {
        Assert.Equal(MethodType.Unary, EchoService.Say.Type);
        Assert.Equal(MethodType.ServerStreaming, EchoService.Expand.Type);
        Assert.Equal(MethodType.ClientStreaming, EchoService.Collect.Type);
        Assert.Equal(MethodType.DuplexStreaming, EchoService.Chat.Type);
        Assert.Equal("mftest.v1.Echo/Say", EchoService.Say.FullName);
        Assert.Equal("/mftest.v1.Echo/Say", EchoService.Say.Path);
    }

    [Fact]
    public void Binding_wrong_message_types_fails_with_a_message_naming_the_method_and_types()
    {
        var error = Assert.Throws<ArgumentException>(() => RpcServiceDefinition.CreateBuilder(EchoService.Descriptor)
            .AddUnary<HealthCheckRequest, EchoReply>("Say", (r, c) => Task.FromResult(new EchoReply())));
        Assert.Contains("mftest.v1.Echo/Say", error.Message, StringComparison.Ordinal);
        Assert.Contains("mftest.v1.EchoRequest", error.Message, StringComparison.Ordinal);
        Assert.Contains("HealthCheckRequest", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Binding_the_wrong_call_kind_fails_with_a_message()
    {
        var error = Assert.Throws<ArgumentException>(() => RpcServiceDefinition.CreateBuilder(EchoService.Descriptor)
            .AddUnary<EchoRequest, EchoReply>("Expand", (r, c) => Task.FromResult(new EchoReply())));
        Assert.Contains("ServerStreaming", error.Message, StringComparison.Ordinal);
        Assert.Contains("Unary", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Unknown_method_names_and_double_binding_fail()
    {
        var unknown = Assert.Throws<ArgumentException>(() => RpcServiceDefinition.CreateBuilder(EchoService.Descriptor)
            .AddUnary<EchoRequest, EchoReply>("Sya", (r, c) => Task.FromResult(new EchoReply())));
        Assert.Contains("Say, Expand, Collect, Chat", unknown.Message, StringComparison.Ordinal);

        var builder = RpcServiceDefinition.CreateBuilder(EchoService.Descriptor).AddUnary<EchoRequest, EchoReply>("Say", (r, c) => Task.FromResult(new EchoReply()));
        Assert.Throws<ArgumentException>(() => builder.AddUnary<EchoRequest, EchoReply>("Say", (r, c) => Task.FromResult(new EchoReply())));
    }

    [Fact]
    public void A_hand_made_method_on_a_descriptor_backed_service_must_agree_with_the_proto()
    {
        var wrong = new Method<HealthCheckRequest, EchoReply>(MethodType.Unary, "mftest.v1.Echo", "Say");
        Assert.Throws<ArgumentException>(() => RpcServiceDefinition.CreateBuilder(EchoService.Descriptor).AddUnary(wrong, (r, c) => Task.FromResult(new EchoReply())));
        var otherService = new Method<EchoRequest, EchoReply>(MethodType.Unary, "other.Service", "Say");
        Assert.Throws<ArgumentException>(() => RpcServiceDefinition.CreateBuilder(EchoService.Descriptor).AddUnary(otherService, (r, c) => Task.FromResult(new EchoReply())));
    }

    [Fact]
    public async Task Adding_the_same_service_twice_fails_at_start()
    {
        await using var server = new RpcServer();
        var echo = new EchoService();
        server.AddService(echo.CreateDefinition()).AddService(echo.CreateDefinition());
        var error = await Assert.ThrowsAsync<ArgumentException>(() => server.StartAsync());
        Assert.Contains("mftest.v1.Echo", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Invalid_options_fail_at_start_naming_the_option()
    {
        await using var server = new RpcServer(new RpcServerOptions { InitialStreamWindowSize = 10 });
        var error = await Assert.ThrowsAsync<ArgumentException>(() => server.StartAsync());
        Assert.Contains("InitialStreamWindowSize", error.Message, StringComparison.Ordinal);
        var channelError = Assert.Throws<ArgumentException>(() => new Client.RpcChannel(new Uri("http://127.0.0.1:1"), new Client.RpcChannelOptions { MaxReceiveMessageSize = 0 }));
        Assert.Contains("MaxReceiveMessageSize", channelError.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new Client.RpcChannel(new Uri("ftp://127.0.0.1:1")));
    }
}
