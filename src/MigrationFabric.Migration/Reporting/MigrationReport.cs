namespace MigrationFabric.Migration.Reporting;

/// <summary>One pre-copy round.</summary>
/// <param name="Round">1-based; the switch-over's final pages are the last round.</param>
/// <param name="Pages">Pages sent.</param>
/// <param name="Bytes">Bytes on the wire.</param>
/// <param name="Duration">Wall time including the flush.</param>
/// <param name="DirtiedDuringRound">Pages the guest dirtied while the round ran.</param>
/// <param name="Throttle">Auto-converge throttle during the round.</param>
public sealed record RoundReport(int Round, long Pages, long Bytes, TimeSpan Duration, long DirtiedDuringRound, double Throttle);

/// <summary>What a migration reports (DESIGN.md, "What every migration reports").</summary>
public sealed record MigrationReport
{
    /// <summary>The migration.</summary>
    public required string MigrationId { get; init; }

    /// <summary>The VM.</summary>
    public required string Vm { get; init; }

    /// <summary>pre-copy, post-copy or hybrid.</summary>
    public required string Strategy { get; init; }

    /// <summary>When it started (the options' clock).</summary>
    public required DateTimeOffset StartedAt { get; init; }

    /// <summary>When the vCPUs stopped at the source.</summary>
    public required DateTimeOffset PausedAt { get; init; }

    /// <summary>When the destination had resumed them.</summary>
    public required DateTimeOffset ResumedAt { get; init; }

    /// <summary>How pre-copy's rounds ended (converged, MaxRounds, or auto-converge exhausted), with the downtime expected then and the reason in words; null for post-copy.</summary>
    public Planning.PreCopyEnding? PreCopyEnding { get; init; }

    /// <summary>Which data channel carried the pages to the destination (gRPC PageStream calls or raw TCP data channels).</summary>
    public DataPlane.DataChannel DataChannel { get; init; }

    /// <summary>Start to verified end.</summary>
    public required TimeSpan TotalTime { get; init; }

    /// <summary>Pause at the source to resume at the destination.</summary>
    public required TimeSpan Downtime { get; init; }

    /// <summary>Bytes on the wire (page batches).</summary>
    public required long BytesSent { get; init; }

    /// <summary>Bytes per destination (one for these strategies).</summary>
    public required IReadOnlyDictionary<string, long> BytesSentPerDestination { get; init; }

    /// <summary>Pages sent in streams (all rounds and the post-copy push).</summary>
    public required long PagesSent { get; init; }

    /// <summary>Pages sent as a zero flag only.</summary>
    public required long ZeroPagesSent { get; init; }

    /// <summary>Pre-copy rounds (empty for post-copy).</summary>
    public required IReadOnlyList<RoundReport> Rounds { get; init; }

    /// <summary>Pages the guest dirtied per second, over the last pre-copy round (0 for post-copy).</summary>
    public required double DirtyPagesPerSecond { get; init; }

    /// <summary>Highest auto-converge throttle applied.</summary>
    public required double MaxThrottle { get; init; }

    /// <summary>Pages the destination still had to fetch after resuming (post-copy and hybrid).</summary>
    public required long PostCopyPages { get; init; }

    /// <summary>Remote faults the destination took.</summary>
    public required long RemoteFaults { get; init; }

    /// <summary>Pages served to remote faults (faulted and pre-paged).</summary>
    public required long PagesServedToFaults { get; init; }

    /// <summary>Median remote fault latency at the destination.</summary>
    public required TimeSpan RemoteFaultP50 { get; init; }

    /// <summary>99th percentile remote fault latency at the destination.</summary>
    public required TimeSpan RemoteFaultP99 { get; init; }

    /// <summary>Pages whose digest matched at both ends (every page of the VM when verified).</summary>
    public required long PagesVerified { get; init; }

    /// <summary>Wire rate over the time pages were moving.</summary>
    public double BandwidthBytesPerSecond => TransferTime > TimeSpan.Zero ? BytesSent / TransferTime.TotalSeconds : 0;

    /// <summary>Time pages were moving (rounds, switch-over flush, post-copy push).</summary>
    public required TimeSpan TransferTime { get; init; }

    /// <summary>The workload's throughput around the migration, when the host adds it (<see cref="ThroughputReport.Build"/>).</summary>
    public ThroughputReport? Throughput { get; init; }
}
