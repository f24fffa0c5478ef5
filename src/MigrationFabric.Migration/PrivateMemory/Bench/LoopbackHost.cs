using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Rpc.Server;

namespace MigrationFabric.Migration.PrivateMemory.Bench;

/// <summary>A host's data plane on a loopback port (a PagesService on its own RpcServer), as the bench's source, destination or sub-host.</summary>
internal sealed class LoopbackHost : IAsyncDisposable
{
    private LoopbackHost() { }

    public PagesService Pages { get; } = new();

    public RpcServer Server { get; } = new(new RpcServerOptions { Port = 0 });

    public Uri Address => Server.Address;

    public static async Task<LoopbackHost> StartAsync(CancellationToken cancellationToken)
    {
        var h = new LoopbackHost();
        h.Server.AddService(h.Pages.Definition);
        try
        {
            await h.Server.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await h.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        return h;
    }

    public ValueTask DisposeAsync() => Server.DisposeAsync();
}
