using MigrationFabric.Rpc.Server;

namespace MigrationFabric.Rpc.Tests.Interop;

/// <summary>Our Kestrel server with the C# Echo service (plus health and reflection) for the stock grpc-js peers to call.</summary>
public sealed class OurServerFixture : IAsyncLifetime
{
    /// <summary>Request size limit the interop server runs with: room for the 16 MiB case, and a limit the too-large case can exceed.</summary>
    public const int MaxReceiveMessageSize = 32 * 1024 * 1024;

    private RpcTestServer? _server;

    public RpcTestServer Server => _server ?? throw new InvalidOperationException("Fixture not started.");

    /// <summary>"127.0.0.1:PORT", as grpc-js takes a target.</summary>
    public string Target => $"127.0.0.1:{Server.Server.Port}";

    public async Task InitializeAsync() =>
        _server = await RpcTestServer.StartAsync(new RpcServerOptions { MaxReceiveMessageSize = MaxReceiveMessageSize });

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}
