using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.DataPlane.Tcp;
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
            // As a host agent: a TCP data-channel listener next to the gRPC endpoint, for whichever channel the migration picks.
            h.Pages.StartDataChannels(new DataChannelListenerOptions());
        }
        catch
        {
            await h.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        return h;
    }

    public async ValueTask DisposeAsync()
    {
        await Pages.StopDataChannelsAsync().ConfigureAwait(false);
        await Server.DisposeAsync().ConfigureAwait(false);
    }
}
