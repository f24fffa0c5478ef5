using System.Threading.Channels;

namespace MigrationFabric.Migration.Reporting;

/// <summary>Where a migration stands.</summary>
public enum MigrationPhase
{
    /// <summary>Opening streams to the destination.</summary>
    Setup,

    /// <summary>Rounds of pages while the VM runs at the source.</summary>
    PreCopy,

    /// <summary>VM paused at the source; final pages and device state going over.</summary>
    SwitchOver,

    /// <summary>VM running at the destination; pages still coming from the source.</summary>
    PostCopy,

    /// <summary>Comparing every page's digest at both ends.</summary>
    Verifying,

    /// <summary>Done and verified.</summary>
    Completed,

    /// <summary>Failed or cancelled before switch-over: the VM runs at the source.</summary>
    Failed,
}

/// <summary>A progress snapshot (what WatchMigration streams).</summary>
/// <param name="MigrationId">The migration.</param>
/// <param name="Phase">Its phase.</param>
/// <param name="Round">Pre-copy round (0 outside pre-copy).</param>
/// <param name="BytesSent">Bytes on the wire so far.</param>
/// <param name="PagesSent">Pages sent so far (all rounds, pushes and faults).</param>
/// <param name="RemainingPages">Pages still to send: dirty pages in pre-copy, pages not yet at the destination in post-copy.</param>
/// <param name="DirtyPagesPerSecond">Pages the guest dirtied per second over the last round.</param>
/// <param name="BandwidthBytesPerSecond">Measured wire rate.</param>
/// <param name="ExpectedDowntime">What switching over now would cost at that rate.</param>
/// <param name="RemoteFaults">Remote faults served (post-copy).</param>
/// <param name="Throttle">Auto-converge throttle on the source vCPUs (0..0.99).</param>
/// <param name="Elapsed">Since the migration started.</param>
public sealed record MigrationProgress(
    string MigrationId, MigrationPhase Phase, int Round, long BytesSent, long PagesSent, long RemainingPages,
    double DirtyPagesPerSecond, double BandwidthBytesPerSecond, TimeSpan ExpectedDowntime, long RemoteFaults, double Throttle, TimeSpan Elapsed)
{
    /// <summary>Each host pages go to: the job's destination first, then a split's sub-hosts or a scatter-gather's intermediates (in the options' order). BytesSent and PagesSent above are their sums.</summary>
    public IReadOnlyList<DestinationProgress> Destinations { get; init; } = [];
}

/// <summary>What a host of a migration plays.</summary>
public enum DestinationRole
{
    /// <summary>The job's destination (a split's main host; a scatter-gather's gathering destination).</summary>
    Destination,

    /// <summary>A split migration's sub-host.</summary>
    SubHost,

    /// <summary>A scatter-gather migration's intermediate.</summary>
    Intermediate,
}

/// <summary>Progress towards one host of a migration.</summary>
/// <param name="Host">The host's data-plane authority (host:port).</param>
/// <param name="Role">What it plays.</param>
/// <param name="BytesSent">Bytes on the wire to it so far.</param>
/// <param name="PagesSent">Pages sent to it so far (retransfers included).</param>
/// <param name="PlannedPages">Distinct pages planned for it (split: its share of the written pages), 0 when not planned ahead.</param>
public sealed record DestinationProgress(string Host, DestinationRole Role, long BytesSent, long PagesSent, long PlannedPages);

/// <summary>An <see cref="IProgress{T}"/> that can be read as an IAsyncEnumerable (keeps the newest snapshots when the reader is slow).</summary>
public sealed class ProgressFeed : IProgress<MigrationProgress>
{
    private readonly Channel<MigrationProgress> _channel;

    /// <summary>Creates a feed keeping at most <paramref name="capacity"/> unread snapshots.</summary>
    public ProgressFeed(int capacity = 64) =>
        _channel = Channel.CreateBounded<MigrationProgress>(new BoundedChannelOptions(capacity) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true });

    /// <inheritdoc/>
    public void Report(MigrationProgress value)
    {
        _channel.Writer.TryWrite(value);
        if (value.Phase is MigrationPhase.Completed or MigrationPhase.Failed) _channel.Writer.TryComplete();
    }

    /// <summary>Ends the feed (the migration is over).</summary>
    public void Complete() => _channel.Writer.TryComplete();

    /// <summary>Every snapshot until the migration ends.</summary>
    public IAsyncEnumerable<MigrationProgress> ReadAllAsync(CancellationToken cancellationToken = default) => _channel.Reader.ReadAllAsync(cancellationToken);
}
