using Google.Protobuf;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Memory.Tracking;
using MigrationFabric.Migration.Codec;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.Reporting;
using MigrationFabric.Migration.Telemetry;
using MigrationFabric.Rpc;

namespace MigrationFabric.Migration.Strategies;

/// <summary>What the destination still lacks when the VM moves.</summary>
internal enum SwitchOverMode
{
    /// <summary>Stop-and-copy: the final dirty pages go over while paused; the destination then has everything.</summary>
    StopAndCopy,

    /// <summary>Post-copy from the start: every page is still at the source.</summary>
    PostCopyAll,

    /// <summary>After pre-copy rounds: the pages dirtied since the last round are fetched post-copy.</summary>
    PostCopyDirty,
}

/// <summary>Pause at the source, final pages or the pending set, device state, resume at the destination; downtime is pause to the destination's reply.</summary>
internal static class SwitchOver
{
    /// <param name="faultChannel">Post-copy: the fault channel to serve the pending pages on, started once they are known. Default none (RemotePages calls only).</param>
    public static async Task RunAsync(MigrationSession session, SwitchOverMode mode, int prefetch, CancellationToken cancellationToken,
        DataPlane.FaultChannel.FaultChannelServer? faultChannel = null)
    {
        var job = session.Job;
        var memory = job.Memory;
        session.Report(MigrationPhase.SwitchOver);
        using var span = MigrationTelemetry.ActivitySource.StartActivity("migration switchover");
        cancellationToken.ThrowIfCancellationRequested();
        long pauseTs = session.Timestamp();
        session.Pause(cancellationToken);
        cancellationToken.ThrowIfCancellationRequested();
        AtomicPageBitmap? pending = null;
        if (mode == SwitchOverMode.StopAndCopy)
        {
            int round = session.Round + 1;
            session.Round = round;
            long pagesBefore = session.Streams.Counters.PagesSent, bytesBefore = session.Streams.Counters.BytesSent;
            long start = session.Timestamp();
            int n = session.HarvestDirty(out var pages);
            await session.SendPagesAsync(pages, n, (uint)round, PageFlags.Retransfer, cancellationToken).ConfigureAwait(false);
            await session.Streams.FlushAsync((uint)round, cancellationToken).ConfigureAwait(false);
            var duration = session.Since(start);
            session.AddTransferTime(duration);
            session.Rounds.Add(new RoundReport(round, session.Streams.Counters.PagesSent - pagesBefore, session.Streams.Counters.BytesSent - bytesBefore, duration, 0, session.Job.Mmu.Throttle));
            session.RemainingPages = 0;
        }
        else
        {
            pending = new AtomicPageBitmap(memory.PageCount);
            if (mode == SwitchOverMode.PostCopyAll) pending.SetAll();
            else memory.Dirty.FetchAndClearInto(pending);
            // Pre-copy batches still in flight would land after the destination marks pages remote.
            await session.Streams.FlushAsync((uint)session.Round, cancellationToken).ConfigureAwait(false);
        }
        var deviceState = job.CaptureDeviceState?.Invoke() ?? ReadOnlyMemory<byte>.Empty;
        var request = new SwitchOverRequest
        {
            MigrationId = job.MigrationId,
            DeviceState = UnsafeByteOperations.UnsafeWrap(deviceState),
            Prefetch = (uint)prefetch,
            Checksum = PageChecksums.ToWire(session.Options.Checksum),
        };
        long pendingCount = 0;
        if (pending is not null)
        {
            var bits = new byte[(memory.PageCount + 7) / 8];
            var writer = new BitmapWriter(bits);
            pending.ForEachSet(ref writer);
            pendingCount = writer.Count;
            request.PendingPages = UnsafeByteOperations.UnsafeWrap(bits);
            request.PendingCount = (ulong)pendingCount;
            request.SourceAddress = job.LocalAddress!.ToString();
            if (pendingCount > 0)
            {
                session.Offer(new OutgoingMigration(job.MigrationId, job.Vm, memory, pending));
                faultChannel?.Start(session.Outgoing!);
            }
        }
        // Last point of return: after the call the VM may already run at the destination.
        cancellationToken.ThrowIfCancellationRequested();
        var response = await session.Channel.AsyncUnaryCall(PagesContract.SwitchOver, request,
            new CallOptions().WithTimeout(session.Options.SwitchOverTimeout)).ResponseAsync.ConfigureAwait(false);
        if (response.PendingCount != (ulong)pendingCount)
            throw new InvalidOperationException($"the destination marked {response.PendingCount} pages pending, the source sent {pendingCount}.");
        var downtime = session.Since(pauseTs);
        session.MarkSwitchedOver(downtime);
        session.PostCopyPages = pendingCount;
        session.RemainingPages = pendingCount;
        span?.SetTag("downtime.ms", downtime.TotalMilliseconds).SetTag("postcopy.pages", pendingCount).SetTag("device_state.bytes", deviceState.Length);
    }

    private struct BitmapWriter(byte[] bits) : IPageVisitor
    {
        public long Count;

        public void Visit(long page)
        {
            bits[page >> 3] |= (byte)(1 << (int)(page & 7));
            Count++;
        }
    }
}
