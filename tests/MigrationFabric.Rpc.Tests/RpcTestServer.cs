using MigrationFabric.Rpc.Client;
using MigrationFabric.Rpc.Server;

namespace MigrationFabric.Rpc.Tests;

/// <summary>A real Kestrel server on 127.0.0.1 (port 0) serving Echo and any extra services, plus a channel to it.</summary>
public sealed class RpcTestServer : IAsyncDisposable
{
    private RpcTestServer(RpcServer server, EchoService echo, RpcChannel channel)
    {
        Server = server;
        Echo = echo;
        Channel = channel;
    }

    public RpcServer Server { get; }

    public EchoService Echo { get; }

    public RpcChannel Channel { get; }

    public static async Task<RpcTestServer> StartAsync(RpcServerOptions? options = null, RpcChannelOptions? channelOptions = null, params RpcServiceDefinition[] extra)
    {
        var echo = new EchoService();
        var server = new RpcServer(options ?? new RpcServerOptions());
        server.AddService(echo.CreateDefinition());
        foreach (var service in extra)
        {
            server.AddService(service);
        }

        await server.StartAsync();
        return new RpcTestServer(server, echo, new RpcChannel(server.Address, channelOptions));
    }

    /// <summary>A channel with other options to the same server.</summary>
    public RpcChannel CreateChannel(RpcChannelOptions options) => new(Server.Address, options);

    public async ValueTask DisposeAsync()
    {
        Channel.Dispose();
        await Server.DisposeAsync();
    }
}

/// <summary>One shared server for a test class.</summary>
public sealed class EchoServerFixture : IAsyncLifetime
{
    private RpcTestServer? _server;

    public RpcTestServer Server => _server ?? throw new InvalidOperationException("Fixture not started.");

    public async Task InitializeAsync() => _server = await RpcTestServer.StartAsync();

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}
