using MigrationFabric.Memory.Workloads;

namespace MigrationFabric.Migration.Reporting;

/// <summary>Which part of the migration a throughput sample falls in.</summary>
public enum ThroughputPeriod
{
    /// <summary>Before the migration started.</summary>
    Before,

    /// <summary>While it ran (at the source until the pause).</summary>
    During,

    /// <summary>After the resume at the destination.</summary>
    After,
}

/// <summary>One throughput sample placed on the migration's clock.</summary>
/// <param name="At">Wall time of the sample.</param>
/// <param name="SinceStart">Relative to the migration's start (negative before it).</param>
/// <param name="PerSecond">Workload throughput.</param>
/// <param name="Period">Before, during or after.</param>
public readonly record struct TimedThroughput(DateTimeOffset At, TimeSpan SinceStart, double PerSecond, ThroughputPeriod Period);

/// <summary>The workload's throughput before, during and after a migration, and how soon it recovered.</summary>
public sealed record ThroughputReport
{
    /// <summary>Unit of the samples (e.g. ops/s).</summary>
    public required string Unit { get; init; }

    /// <summary>Every sample, oldest first.</summary>
    public required IReadOnlyList<TimedThroughput> Timeline { get; init; }

    /// <summary>Mean throughput before the migration.</summary>
    public required double BaselinePerSecond { get; init; }

    /// <summary>Mean throughput while it ran at the source.</summary>
    public required double DuringPerSecond { get; init; }

    /// <summary>Mean throughput after the resume.</summary>
    public required double AfterPerSecond { get; init; }

    /// <summary>Resume to the first sample at or above 90% of the baseline; null if it never got there in the samples.</summary>
    public required TimeSpan? TimeToRecover90 { get; init; }

    /// <summary>Places the source workload's samples (<paramref name="source"/>, started at <paramref name="sourceStartedAt"/>) and the destination's (after the resume) on the migration's clock.</summary>
    public static ThroughputReport Build(MigrationReport report, ThroughputTimeline source, DateTimeOffset sourceStartedAt,
        ThroughputTimeline? destination, DateTimeOffset destinationStartedAt)
    {
        ArgumentNullException.ThrowIfNull(report);
        ArgumentNullException.ThrowIfNull(source);
        var timeline = new List<TimedThroughput>();
        foreach (var s in source.Snapshot())
        {
            var at = sourceStartedAt + s.Elapsed;
            if (at > report.PausedAt) break;
            timeline.Add(new(at, at - report.StartedAt, s.PerSecond, at <= report.StartedAt ? ThroughputPeriod.Before : ThroughputPeriod.During));
        }
        if (destination is not null)
            foreach (var s in destination.Snapshot())
            {
                var at = destinationStartedAt + s.Elapsed;
                timeline.Add(new(at, at - report.StartedAt, s.PerSecond, ThroughputPeriod.After));
            }
        double Mean(ThroughputPeriod p)
        {
            double sum = 0; int n = 0;
            foreach (var t in timeline) if (t.Period == p) { sum += t.PerSecond; n++; }
            return n == 0 ? 0 : sum / n;
        }
        double baseline = Mean(ThroughputPeriod.Before);
        TimeSpan? recover = null;
        foreach (var t in timeline)
            if (t.Period == ThroughputPeriod.After && baseline > 0 && t.PerSecond >= 0.9 * baseline)
            {
                recover = t.At - report.ResumedAt;
                if (recover < TimeSpan.Zero) recover = TimeSpan.Zero;
                break;
            }
        return new ThroughputReport
        {
            Unit = source.Unit, Timeline = timeline, BaselinePerSecond = baseline, DuringPerSecond = Mean(ThroughputPeriod.During),
            AfterPerSecond = Mean(ThroughputPeriod.After), TimeToRecover90 = recover,
        };
    }
}
