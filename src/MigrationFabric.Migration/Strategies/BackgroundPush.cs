using MigrationFabric.Migration.Codec;
using MigrationFabric.Migration.Reporting;
using MigrationFabric.Migration.Telemetry;

namespace MigrationFabric.Migration.Strategies;

/// <summary>Post-copy at the source: pushes every page the destination still lacks, holding off while a remote fault is served and its reply written, and continuing just past the last one.</summary>
internal static class BackgroundPush
{
    // Longest one wait for faults' replies to leave: bounds the push's stall if a reply's completion is never reported.
    private static readonly TimeSpan UrgentWaitLimit = TimeSpan.FromMilliseconds(20);

    public static async Task RunAsync(MigrationSession session, CancellationToken cancellationToken)
    {
        var outgoing = session.Outgoing;
        session.Report(MigrationPhase.PostCopy);
        if (outgoing is null) return;
        // Every page is on its way once the push ends: a fault still out then finds its page installed by the push.
        using var faultChannel = outgoing.FaultChannel;
        using var span = MigrationTelemetry.ActivitySource.StartActivity("migration postcopy");
        var memory = session.Job.Memory;
        var pending = outgoing.Pending;
        long total = memory.PageCount, cursor = 0, step = 0;
        long start = session.Timestamp();
        while (true)
        {
            // Checked before every page: a fault's reply is built and written on the same cores as this loop's encoding.
            if (outgoing.HasUrgent) await outgoing.WaitForNoUrgentAsync(UrgentWaitLimit, cancellationToken).ConfigureAwait(false);
            if ((++step & 63) == 0)
            {
                long hint = outgoing.TakeHint();
                if (hint >= 0) cursor = hint;
                if ((step & 4095) == 0)
                {
                    session.RemainingPages = pending.CountSet();
                    session.MaybeReport();
                }
            }
            if (pending.TestAndClear(cursor)) await session.Streams.AddAsync(memory, cursor, 0, PageFlags.None).ConfigureAwait(false);
            if (++cursor == total)
            {
                cursor = 0;
                if (pending.CountSet() == 0) break;
            }
        }
        await session.Streams.FlushAsync(0, cancellationToken).ConfigureAwait(false);
        session.AddTransferTime(session.Since(start));
        session.RemainingPages = 0;
        span?.SetTag("pages.served_to_faults", outgoing.PagesServed).SetTag("fault.requests", outgoing.Requests);
    }
}
