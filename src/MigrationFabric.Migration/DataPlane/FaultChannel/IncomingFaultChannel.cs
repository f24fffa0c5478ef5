using System.Net.Sockets;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Rpc;

namespace MigrationFabric.Migration.DataPlane.FaultChannel;

/// <summary>The destination's side of a fault channel the source opened (OpenDataChannel, REMOTE_FAULTS): hands the connection to the migration's fault handler and holds it until the migration ends.</summary>
internal static class IncomingFaultChannel
{
    /// <summary>Attaches <paramref name="socket"/> to <paramref name="migration"/>, sends the open frame, and returns when the migration ends or <paramref name="cancellationToken"/> fires.</summary>
    /// <remarks>A channel that cannot be attached (after switch-over, or a second one) gets an error frame instead of the open frame: the source's switch-over then fails by name.</remarks>
    public static async Task ServeAsync(IncomingMigration migration, Socket socket, CancellationToken cancellationToken)
    {
        string? refusal = migration.Phase != IncomingPhase.Receiving
            ? $"migration {migration.MigrationId} is {migration.Phase}: a fault channel must be open before switch-over."
            : null;
        var client = new FaultChannelClient(socket, migration.Options.RemoteFaultTimeout);
        if (refusal is null && !migration.TryAttachFaultChannel(client)) refusal = $"migration {migration.MigrationId} has a fault channel already.";
        if (refusal is not null)
        {
            // Same field numbers as a data channel's PageAck error: the source reads either.
            FaultFrame.WriteMessage(socket, new RemotePagesResponse { ErrorCode = (uint)StatusCode.FailedPrecondition, ErrorMessage = $"fault channel: {refusal}" });
            return;
        }
        try
        {
            client.SendOpen(migration.MigrationId, migration.Vm);
            var ended = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            await using (cancellationToken.UnsafeRegister(static s => ((TaskCompletionSource)s!).TrySetResult(), ended))
                await Task.WhenAny(migration.Completion, ended.Task).ConfigureAwait(false);
        }
        finally
        {
            client.Dispose();
        }
    }
}
