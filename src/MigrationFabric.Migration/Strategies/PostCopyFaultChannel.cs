using MigrationFabric.Migration.DataPlane.FaultChannel;

namespace MigrationFabric.Migration.Strategies;

/// <summary>Switch-over into post-copy with the fault channel the options ask for: opened before the pause (outside downtime), served from the moment the pending set exists.</summary>
internal static class PostCopyFaultChannel
{
    public static async Task SwitchOverAsync(MigrationSession session, SwitchOverMode mode, int prefetch, RemoteFaultTransport transport, CancellationToken cancellationToken)
    {
        FaultChannelServer? channel = null;
        if (transport == RemoteFaultTransport.Tcp)
        {
            var job = session.Job;
            channel = await FaultChannelOpener.OpenAsync(session.Channel, job.Destination, job.MigrationId, job.Vm, session.Options.SwitchOverTimeout, cancellationToken)
                .ConfigureAwait(false);
        }
        try
        {
            await SwitchOver.RunAsync(session, mode, prefetch, cancellationToken, channel).ConfigureAwait(false);
        }
        catch
        {
            channel?.Dispose();
            throw;
        }
        // Stop-and-copy (a hybrid whose rounds converged) leaves nothing to fault on.
        if (channel is { Started: false }) channel.Dispose();
    }
}
