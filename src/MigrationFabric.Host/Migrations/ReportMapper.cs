namespace MigrationFabric.Host.Migrations;

using Google.Protobuf.WellKnownTypes;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Workloads;
using ThroughputSample = MigrationFabric.Contracts.V1.ThroughputSample;
using LibPhase = MigrationFabric.Migration.Reporting.MigrationPhase;
using LibProgress = MigrationFabric.Migration.Reporting.MigrationProgress;
using LibReport = MigrationFabric.Migration.Reporting.MigrationReport;
using ThroughputPeriod = MigrationFabric.Migration.Reporting.ThroughputPeriod;
using ThroughputReport = MigrationFabric.Migration.Reporting.ThroughputReport;
using LibEnding = MigrationFabric.Migration.Planning.PreCopyEnding;
using RoundDecision = MigrationFabric.Migration.Planning.RoundDecision;
using DowntimeLimitExceededException = MigrationFabric.Migration.Planning.DowntimeLimitExceededException;
using MigrationFailedException = MigrationFabric.Migration.DataPlane.MigrationFailedException;

/// <summary>Turns the Migration library's progress and report into the public API's messages.</summary>
public static class ReportMapper
{
    /// <summary>The API phase of a library phase.</summary>
    public static MigrationPhase Phase(LibPhase phase) => phase switch
    {
        LibPhase.Setup => MigrationPhase.Planning,
        LibPhase.PreCopy => MigrationPhase.PreCopy,
        LibPhase.SwitchOver => MigrationPhase.Switchover,
        LibPhase.PostCopy => MigrationPhase.PostCopy,
        LibPhase.Verifying => MigrationPhase.Verifying,
        LibPhase.Completed => MigrationPhase.Completed,
        _ => MigrationPhase.Failed,
    };

    /// <summary>A progress event.</summary>
    public static MigrationEvent Event(LibProgress p, string destination) => new()
    {
        MigrationId = p.MigrationId,
        At = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow),
        Phase = Phase(p.Phase),
        Round = (uint)Math.Max(0, p.Round),
        BytesSent = (ulong)Math.Max(0, p.BytesSent),
        BytesRemaining = (ulong)Math.Max(0, p.RemainingPages) * Page.Size,
        DirtyPagesPerSecond = p.DirtyPagesPerSecond,
        ExpectedDowntimeMs = p.ExpectedDowntime == TimeSpan.MaxValue ? 0 : p.ExpectedDowntime.TotalMilliseconds,
        RemoteFaults = (ulong)Math.Max(0, p.RemoteFaults),
        ThroughputBytesPerSecond = p.BandwidthBytesPerSecond,
        ThrottlePercent = (uint)Math.Round(p.Throttle * 100),
        Destinations = { new DestinationProgress { Host = destination, BytesSent = (ulong)Math.Max(0, p.BytesSent), Pages = (ulong)Math.Max(0, p.PagesSent) } },
    };

    /// <summary>The workload's pre-migration level: the mean of the source's samples before the migration started (0 when there are none).</summary>
    public static double Baseline(LibReport r, ThroughputTimeline? sourceTimeline, DateTimeOffset sourceStartedAt) =>
        sourceTimeline is null ? 0 : ThroughputReport.Build(r, sourceTimeline, sourceStartedAt, null, default).BaselinePerSecond;

    /// <summary>The API report of a verified migration, with the source workload's throughput around it and, from <paramref name="recovery"/>, the destination's after it.</summary>
    /// <remarks>
    /// recovery_time runs from the start of switch-over (the pause) to the first destination sample at 90% of the
    /// baseline or more, as fabric.proto defines it; <c>recovery</c> says whether that happened within the
    /// <c>recovery_window</c> watched, so an unset recovery_time is never mistaken for an instant recovery.
    /// </remarks>
    public static MigrationReport Report(LibReport r, ulong vmDigest, ThroughputTimeline? sourceTimeline, DateTimeOffset sourceStartedAt,
        RecoveryObservation? recovery = null)
    {
        var report = new MigrationReport
        {
            TotalTime = Duration.FromTimeSpan(r.TotalTime),
            Downtime = Duration.FromTimeSpan(r.Downtime),
            BytesSent = (ulong)r.BytesSent,
            DirtyPagesPerSecond = r.DirtyPagesPerSecond,
            RemoteFaults = (ulong)r.RemoteFaults,
            RemoteFaultP50Us = r.RemoteFaultP50.TotalMicroseconds,
            RemoteFaultP99Us = r.RemoteFaultP99.TotalMicroseconds,
            ZeroPages = (ulong)r.ZeroPagesSent,
            Integrity = new IntegrityCheck { PagesChecked = (ulong)r.PagesVerified, MismatchedPages = 0, VmDigest = vmDigest },
            PreCopyEnding = r.PreCopyEnding is { } ending ? Ending(ending) : null,
            DataChannel = r.DataChannel == MigrationFabric.Migration.DataPlane.DataChannel.Tcp ? DataChannelKind.Tcp : DataChannelKind.Grpc,
        };
        foreach (var (host, bytes) in r.BytesSentPerDestination)
            report.PerDestination.Add(new DestinationProgress { Host = host, BytesSent = (ulong)bytes });
        foreach (var round in r.Rounds) report.PagesPerRound.Add((ulong)round.Pages);
        double baseline = 0;
        if (sourceTimeline is not null)
        {
            var t = ThroughputReport.Build(r, sourceTimeline, sourceStartedAt, null, default);
            baseline = t.BaselinePerSecond;
            foreach (var s in t.Timeline)
                report.Throughput.Add(new ThroughputSample
                {
                    OffsetMs = (long)s.SinceStart.TotalMilliseconds,
                    Value = s.PerSecond,
                    Phase = s.Period == ThroughputPeriod.Before ? MigrationPhase.Planning : MigrationPhase.PreCopy,
                });
        }
        var destination = recovery?.Destination;
        if (destination is not null)
            for (int i = 0; i < destination.ElapsedTicks.Length; i++)
            {
                var at = destination.StartedAt + TimeSpan.FromTicks(destination.ElapsedTicks[i]);
                report.Throughput.Add(new ThroughputSample { OffsetMs = (long)(at - r.StartedAt).TotalMilliseconds, Value = destination.PerSecond[i], Phase = MigrationPhase.Completed });
            }
        SetRecovery(report, baseline, recovery, r.PausedAt);
        return report;
    }

    /// <summary>The API form of how pre-copy's rounds ended (expected_downtime unset when no bandwidth was measured).</summary>
    public static PreCopyEnding Ending(LibEnding e) => new()
    {
        Decision = e.Decision switch
        {
            RoundDecision.SwitchOver => PreCopyDecision.Converged,
            RoundDecision.RoundsExhausted => PreCopyDecision.RoundsExhausted,
            RoundDecision.ThrottleExhausted => PreCopyDecision.ThrottleExhausted,
            _ => PreCopyDecision.Unspecified,
        },
        Rounds = (uint)Math.Max(0, e.Rounds),
        RemainingPages = (ulong)Math.Max(0, e.RemainingPages),
        ExpectedDowntime = e.ExpectedDowntime == TimeSpan.MaxValue ? null : Duration.FromTimeSpan(e.ExpectedDowntime),
        ThrottlePercent = (uint)Math.Round(Math.Clamp(e.Throttle, 0, 1) * 100),
        Reason = e.Reason,
    };

    /// <summary>The migration's error for a failure before switch-over; one caused by limits.downtime_limit names that limit and what was expected.</summary>
    public static string FailureMessage(MigrationFailedException e) => e.InnerException is DowntimeLimitExceededException d
        ? $"limits.downtime_limit of {d.Limit.TotalMilliseconds:0.###} ms would be exceeded: pre-copy ended after {d.Ending.Rounds} rounds with " +
          $"{d.Ending.RemainingPages} pages left, expected to take {(d.Ending.ExpectedDowntime == TimeSpan.MaxValue ? "an unknown time (no bandwidth measured)" : $"{d.Ending.ExpectedDowntime.TotalMilliseconds:0.#} ms")} " +
          $"({d.Ending.Reason}). Not switched over: the VM keeps running at the source (raise limits.downtime_limit or the bandwidth, or use hybrid)."
        : e.Message;

    /// <summary>The report of a migration that failed before switch-over: only how pre-copy ended, when limits.downtime_limit failed it; otherwise null.</summary>
    public static MigrationReport? FailedReport(MigrationFailedException e) =>
        e.InnerException is DowntimeLimitExceededException d ? new MigrationReport { PreCopyEnding = Ending(d.Ending) } : null;

    /// <summary>Sets recovery, recovery_time (from <paramref name="pausedAt"/>, the start of switch-over) and recovery_window from what the destination did after the resume.</summary>
    public static void SetRecovery(MigrationReport report, double baselinePerSecond, RecoveryObservation? recovery, DateTimeOffset pausedAt)
    {
        report.RecoveryWindow = Duration.FromTimeSpan(recovery?.Watched ?? TimeSpan.Zero);
        report.RecoveryTime = null;
        var destination = recovery?.Destination;
        if (baselinePerSecond <= 0) report.Recovery = RecoveryOutcome.NoBaseline;
        else if (destination is null) report.Recovery = RecoveryOutcome.NotObserved;
        else if (RecoveryWatch.FirstRecovered(destination, baselinePerSecond) is { } recoveredAt)
        {
            report.Recovery = RecoveryOutcome.Recovered;
            report.RecoveryTime = Duration.FromTimeSpan(recoveredAt > pausedAt ? recoveredAt - pausedAt : TimeSpan.Zero);
        }
        else report.Recovery = RecoveryOutcome.NotRecovered;
    }
}
