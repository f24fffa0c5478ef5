using MigrationFabric.Migration.Codec;
using MigrationFabric.Migration.Planning;
using MigrationFabric.Migration.Reporting;
using MigrationFabric.Migration.Telemetry;

namespace MigrationFabric.Migration.Strategies;

/// <summary>Pre-copy rounds: everything once, then the pages dirtied meanwhile, until the remainder fits the downtime target (QEMU's ram_save_iterate loop).</summary>
internal static class RoundLoop
{
    /// <summary>Runs rounds until the remainder fits the downtime target, <paramref name="maxRounds"/> run out, or auto-converge is exhausted (see <see cref="ConvergencePlanner.Decide"/>); returns how it ended (also kept in <see cref="MigrationSession.PreCopyEnding"/>).</summary>
    public static async Task<PreCopyEnding> RunAsync(MigrationSession session, PreCopyOptions options, int? maxRounds, CancellationToken cancellationToken)
    {
        var memory = session.Job.Memory;
        var planner = new ConvergencePlanner(options);
        session.Report(MigrationPhase.PreCopy);
        memory.Dirty.ClearAll();
        for (int round = 1; ; round++)
        {
            session.Round = round;
            using var span = MigrationTelemetry.ActivitySource.StartActivity("migration precopy.round");
            span?.SetTag("round", round);
            long dirtiedBefore = memory.Dirty.NewlyDirtiedTotal;
            long bytesBefore = session.Streams.Counters.BytesSent, pagesBefore = session.Streams.Counters.PagesSent;
            long start = session.Timestamp();
            double throttle = session.Job.Mmu.Throttle;
            if (round == 1) await session.SendAllAsync(1, PageFlags.None, cancellationToken).ConfigureAwait(false);
            else
            {
                int n = session.HarvestDirty(out var pages);
                await session.SendPagesAsync(pages, n, (uint)round, PageFlags.Retransfer, cancellationToken).ConfigureAwait(false);
            }
            await session.Streams.FlushAsync((uint)round, cancellationToken).ConfigureAwait(false);
            var duration = session.Since(start);
            session.AddTransferTime(duration);
            long dirtied = memory.Dirty.NewlyDirtiedTotal - dirtiedBefore;
            long sent = session.Streams.Counters.PagesSent - pagesBefore, bytes = session.Streams.Counters.BytesSent - bytesBefore;
            session.DirtyPagesPerSecond = duration > TimeSpan.Zero ? dirtied / duration.TotalSeconds : 0;
            session.Rounds.Add(new RoundReport(round, sent, bytes, duration, dirtied, throttle));
            session.MeasureRound(bytes, duration);
            long remaining = memory.Dirty.CountSet();
            session.RemainingPages = remaining;
            var expected = session.ExpectedDowntime(remaining);
            span?.SetTag("pages", sent).SetTag("bytes", bytes).SetTag("dirtied.pages", dirtied).SetTag("expected_downtime.ms", expected.TotalMilliseconds);
            session.Report(MigrationPhase.PreCopy);
            var decision = planner.Decide(round, remaining, session.Bandwidth, maxRounds, throttle);
            if (decision != RoundDecision.Continue)
            {
                var ending = planner.Ending(decision, round, remaining, expected, throttle, maxRounds);
                session.PreCopyEnding = ending;
                span?.AddEvent(new System.Diagnostics.ActivityEvent($"pre-copy ends: {ending.Reason}"));
                session.Activity?.SetTag("precopy.ending", decision.ToString()).SetTag("precopy.ending.reason", ending.Reason);
                return ending;
            }
            double current = session.Job.Mmu.Throttle;
            double next = planner.NextThrottle(current, sent, dirtied);
            if (next != current)
            {
                session.SetThrottle(next);
                span?.AddEvent(new System.Diagnostics.ActivityEvent($"auto-converge throttle {next:0.00}"));
            }
        }
    }
}
