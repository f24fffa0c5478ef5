using MigrationFabric.Migration.Codec;
using MigrationFabric.Migration.Reporting;
using MigrationFabric.Migration.Telemetry;

namespace MigrationFabric.Migration.Strategies;

/// <summary>Post-copy at the source: pushes every page the destination still lacks, yielding to remote faults and continuing just past the last one.</summary>
internal static class BackgroundPush
{
    public static async Task RunAsync(MigrationSession session, CancellationToken cancellationToken)
    {
        var outgoing = session.Outgoing;
        session.Report(MigrationPhase.PostCopy);
        if (outgoing is null) return;
        using var span = MigrationTelemetry.ActivitySource.StartActivity("migration postcopy");
        var memory = session.Job.Memory;
        var pending = outgoing.Pending;
        long total = memory.PageCount, cursor = 0, step = 0;
        long start = session.Timestamp();
        while (true)
        {
            if ((++step & 63) == 0)
            {
                await outgoing.WaitForNoUrgentAsync(cancellationToken).ConfigureAwait(false);
                long hint = outgoing.TakeHint();
                if (hint >= 0) cursor = hint;
                session.RemainingPages = pending.CountSet();
                session.MaybeReport();
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
