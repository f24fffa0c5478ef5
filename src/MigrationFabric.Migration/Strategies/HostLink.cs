using MigrationFabric.Contracts.V1;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Rpc;
using MigrationFabric.Rpc.Client;

namespace MigrationFabric.Migration.Strategies;

/// <summary>The source's links to one further host of a multi-host migration (a split sub-host, a scatter intermediate).</summary>
internal sealed class HostLink : IAsyncDisposable
{
    /// <summary>The host's data-plane address.</summary>
    public required Uri Address { get; init; }

    /// <summary>For switch-over, verification and abort calls.</summary>
    public required RpcChannel Control { get; init; }

    /// <summary>One channel (one HTTP/2 connection) per page stream.</summary>
    public required RpcChannel[] StreamChannels { get; init; }

    /// <summary>The id this host knows the migration by.</summary>
    public required string MigrationId { get; init; }

    /// <summary>The page streams, once opened.</summary>
    public PageStreamGroup? Streams { get; set; }

    /// <summary>Opens the channels (streams are opened by the strategy, with its StreamOpen).</summary>
    public static HostLink Open(Uri address, int streams, RpcChannelOptions options, string migrationId)
    {
        var channels = new RpcChannel[streams];
        for (int i = 0; i < streams; i++) channels[i] = new RpcChannel(address, options);
        return new HostLink { Address = address, Control = new RpcChannel(address, options), StreamChannels = channels, MigrationId = migrationId };
    }

    /// <summary>Drops the streams, tells the host to discard what it got (best effort: it may be the host that failed), and closes the links.</summary>
    public async Task AbortAsync(string reason)
    {
        if (Streams is not null) await Streams.DisposeAsync().ConfigureAwait(false);
        Streams = null;
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await Control.AsyncUnaryCall(PagesContract.AbortMigration, new AbortMigrationRequest { MigrationId = MigrationId, Reason = reason },
                new CallOptions(CancellationToken: timeout.Token)).ResponseAsync.ConfigureAwait(false);
        }
        catch (Exception e) when (e is RpcException or OperationCanceledException or IOException or HttpRequestException)
        {
            // The host is gone: what it held goes with it.
        }
        await DisposeAsync().ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        if (Streams is not null) await Streams.DisposeAsync().ConfigureAwait(false);
        foreach (var c in StreamChannels) c.Dispose();
        Control.Dispose();
    }
}
