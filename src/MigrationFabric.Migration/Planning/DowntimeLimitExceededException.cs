namespace MigrationFabric.Migration.Planning;

/// <summary>Pre-copy stopped iterating without converging and switching over would exceed the hard downtime limit; the VM stays at the source.</summary>
public sealed class DowntimeLimitExceededException(PreCopyEnding ending, TimeSpan limit)
    : Exception($"pre-copy cannot switch over within DowntimeLimit {limit.TotalMilliseconds:0.###} ms: {ending.Reason}.")
{
    /// <summary>How pre-copy's rounds ended.</summary>
    public PreCopyEnding Ending { get; } = ending;

    /// <summary>The limit that would have been exceeded.</summary>
    public TimeSpan Limit { get; } = limit;
}
