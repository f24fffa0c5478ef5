using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Rpc.Server;

namespace MigrationFabric.Migration.Tests.Support;

/// <summary>A host agent's data plane for tests: a real RpcServer on 127.0.0.1 with a PagesService.</summary>
public sealed class Agent : IAsyncDisposable
{
    private Agent(RpcServer server, PagesService pages)
    {
        Server = server;
        Pages = pages;
    }

    public RpcServer Server { get; }

    public PagesService Pages { get; }

    public Uri Address => Server.Address;

    public static async Task<Agent> StartAsync()
    {
        var pages = new PagesService();
        var server = new RpcServer(new RpcServerOptions { Port = 0 });
        server.AddService(pages.Definition);
        await server.StartAsync();
        return new Agent(server, pages);
    }

    /// <summary>Stops the server at once: open connections are cut, as when the agent's process dies.</summary>
    public async Task KillAsync()
    {
        try { await Server.StopAsync(new CancellationToken(true)); }
        catch (OperationCanceledException) { }
    }

    public ValueTask DisposeAsync() => Server.DisposeAsync();
}
