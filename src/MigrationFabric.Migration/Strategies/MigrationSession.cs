using System.Buffers;
using System.Diagnostics;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Tracking;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.Reporting;
using MigrationFabric.Migration.Telemetry;
using MigrationFabric.Rpc;
using MigrationFabric.Rpc.Client;

namespace MigrationFabric.Migration.Strategies;

/// <summary>The shared pieces of one migration at the source: the channel and streams, the page source, timings, progress and rollback.</summary>
internal sealed class MigrationSession : IAsyncDisposable
{
    private readonly TimeProvider _time;
    private readonly long _startTs;
    private readonly double _throttleBefore;
    private long[]? _pageList;
    private long _lastProgressTs;
    private long _transferTicks;
    private TokenBucket? _bucket;
    private readonly RpcChannel[] _streamChannels;

    private MigrationSession(MigrationJob job, MigrationOptions options, string strategy)
    {
        Job = job;
        Options = options;
        Strategy = strategy;
        _time = options.TimeProvider;
        _startTs = _time.GetTimestamp();
        StartedAt = _time.GetUtcNow();
        _throttleBefore = job.Mmu.Throttle;
        Channel = new RpcChannel(job.Destination, options.Channel ?? new RpcChannelOptions());
        // One connection per stream: a connection has one read loop per side, so streams on one connection share a core.
        _streamChannels = new RpcChannel[options.Streams];
        for (int i = 0; i < _streamChannels.Length; i++) _streamChannels[i] = new RpcChannel(job.Destination, options.Channel ?? new RpcChannelOptions());
        if (options.BandwidthCap is { } cap) _bucket = new TokenBucket(cap, Math.Max(cap / 10, 4L << 20), _time);
    }

    public MigrationJob Job { get; }
    public MigrationOptions Options { get; }
    public string Strategy { get; }
    public RpcChannel Channel { get; }
    public PageStreamGroup Streams { get; private set; } = null!;
    public DateTimeOffset StartedAt { get; }
    public DateTimeOffset PausedAt { get; private set; }
    public DateTimeOffset ResumedAt { get; private set; }
    public TimeSpan Downtime { get; private set; }
    public MigrationPhase Phase { get; private set; } = MigrationPhase.Setup;
    public int Round { get; set; }
    public List<RoundReport> Rounds { get; } = [];
    public double DirtyPagesPerSecond { get; set; }
    public double MaxThrottle { get; set; }
    public Planning.PreCopyEnding? PreCopyEnding { get; set; }
    public long RemainingPages { get; set; }
    public bool Paused { get; private set; }
    public bool SwitchedOver { get; private set; }
    public OutgoingMigration? Outgoing { get; private set; }
    public long PostCopyPages { get; set; }
    public long RemoteFaults { get; set; }
    public TimeSpan FaultP50 { get; set; }
    public TimeSpan FaultP99 { get; set; }
    public long PagesVerified { get; set; }
    public Activity? Activity { get; private set; }

    /// <summary>Progress towards the hosts beyond the job's destination (split sub-hosts, scatter intermediates), set by multi-host strategies.</summary>
    public Func<IReadOnlyList<DestinationProgress>>? FurtherDestinations { get; set; }

    public TimeSpan Elapsed => _time.GetElapsedTime(_startTs);

    /// <summary>Bytes per second the latest pre-copy round moved (<see cref="MeasureRound"/>), else over all the time pages were moving so far.</summary>
    /// <remarks>
    /// The switch-over decision asks what the remainder would cost now. A first round's average says little about that when
    /// the destination's rate changed since (VMemDirect writes first copies to swap but retransfers of hot pages to memory),
    /// and a whole-migration average never catches up with it: QEMU likewise sizes the switch-over from its latest interval.
    /// </remarks>
    public double Bandwidth
    {
        get
        {
            double latest = Volatile.Read(ref _latestRoundRate);
            if (latest > 0) return latest;
            double secs = TimeSpan.FromTicks(Volatile.Read(ref _transferTicks)).TotalSeconds;
            return secs > 0 && Streams is not null ? Streams.Counters.BytesSent / secs : 0;
        }
    }

    /// <summary>Rounds shorter than this keep the previous estimate: a flush's round trip would dominate what they measure.</summary>
    internal static readonly TimeSpan ShortestMeasuredRound = TimeSpan.FromMilliseconds(20);

    private double _latestRoundRate;

    /// <summary>Records a pre-copy round's bytes and time: its rate becomes <see cref="Bandwidth"/> unless the round was too short to measure.</summary>
    public void MeasureRound(long bytes, TimeSpan duration)
    {
        if (bytes > 0 && duration >= ShortestMeasuredRound) Volatile.Write(ref _latestRoundRate, bytes / duration.TotalSeconds);
    }

    public TimeSpan ExpectedDowntime(long pages) => Planning.ConvergencePlanner.ExpectedDowntime(pages, Bandwidth);

    public static MigrationSession Create(MigrationJob job, MigrationOptions options, string strategy)
    {
        var session = new MigrationSession(job, options, strategy);
        session.Activity = MigrationTelemetry.ActivitySource.StartActivity($"migration {strategy}", ActivityKind.Internal);
        session.Activity?.SetTag("migration.id", job.MigrationId).SetTag("vm", job.Vm).SetTag("vm.pages", job.Memory.PageCount)
            .SetTag("destination", job.Destination.ToString());
        return session;
    }

    public async Task OpenStreamsAsync(CancellationToken cancellationToken)
    {
        Report(MigrationPhase.Setup);
        var open = new StreamOpen
        {
            MigrationId = Job.MigrationId, Vm = Job.Vm, TotalPages = (ulong)Job.Memory.PageCount, PageSize = Page.Size,
            Codec = new CodecOptions
            {
                Compression = Options.Compression == Codec.PageCompression.Deflate ? Compression.Deflate : Compression.None,
                Checksum = Codec.PageChecksums.ToWire(Options.Checksum),
            },
        };
        Streams = await PageStreamGroup.OpenAsync(_streamChannels, open, Options.BatchPages, Options.Compression, _bucket, cancellationToken, Options.DataChannel)
            .ConfigureAwait(false);
        Activity?.SetTag("migration.data_channel", Streams.DataChannel.ToString());
    }

    public void Report(MigrationPhase phase)
    {
        Phase = phase;
        Activity?.AddEvent(new ActivityEvent($"phase {phase}"));
        Publish();
    }

    /// <summary>During a walk over every page (first round, routing to several hosts): reports progress every 4096 pages.</summary>
    public void ReportWalkAt(long page)
    {
        if ((page & 4095) != 0) return;
        RemainingPages = Job.Memory.PageCount - page;
        MaybeReport();
    }

    /// <summary>Reports progress if ProgressInterval has passed since the last report.</summary>
    public void MaybeReport()
    {
        long now = _time.GetTimestamp();
        if (_time.GetElapsedTime(_lastProgressTs, now) >= Options.ProgressInterval) Publish();
    }

    private void Publish()
    {
        _lastProgressTs = _time.GetTimestamp();
        if (Job.Progress is not { } progress) return;
        var c = Streams?.Counters;
        var destinations = new List<DestinationProgress> { new(Job.Destination.Authority, DestinationRole.Destination, c?.BytesSent ?? 0, c?.PagesSent ?? 0, 0) };
        if (FurtherDestinations is { } further) destinations.AddRange(further());
        long bytes = 0, pages = 0;
        foreach (var d in destinations) { bytes += d.BytesSent; pages += d.PagesSent; }
        progress.Report(new MigrationProgress(Job.MigrationId, Phase, Round, bytes, pages, RemainingPages,
            DirtyPagesPerSecond, Bandwidth, Streams is null ? TimeSpan.Zero : ClampDowntime(ExpectedDowntime(RemainingPages)),
            Outgoing?.Requests ?? RemoteFaults, Job.Mmu.Throttle, Elapsed) { Destinations = destinations });
    }

    private static TimeSpan ClampDowntime(TimeSpan t) => t == TimeSpan.MaxValue ? TimeSpan.Zero : t;

    /// <summary>Sends every page of the VM (the first round).</summary>
    public async Task SendAllAsync(uint round, byte flags, CancellationToken cancellationToken)
    {
        var memory = Job.Memory;
        for (long p = 0; p < memory.PageCount; p++)
        {
            await Streams.AddAsync(memory, p, round, flags, cancellationToken).ConfigureAwait(false);
            if ((p & 4095) == 4095)
            {
                cancellationToken.ThrowIfCancellationRequested();
                RemainingPages = memory.PageCount - p;
                MaybeReport();
            }
        }
    }

    /// <summary>Takes the dirty log (fetch-and-clear) into a page list; returns how many pages.</summary>
    /// <remarks>Goes through GuestMemory.HarvestDirty, not the bitmap directly: vCPUs run during a round, and
    /// a bit taken while its page's last store still sits in a write buffer would let the round copy the old
    /// bytes with no bit left for the next round. HarvestDirty puts a process-wide barrier in between.</remarks>
    public int HarvestDirty(out long[] pages)
    {
        pages = _pageList ??= ArrayPool<long>.Shared.Rent((int)Job.Memory.PageCount);
        var collector = new PageListCollector(pages);
        Job.Memory.HarvestDirty(ref collector);
        return collector.Count;
    }

    /// <summary>Sends the pages in <paramref name="pages"/>[0..count).</summary>
    public async Task SendPagesAsync(long[] pages, int count, uint round, byte flags, CancellationToken cancellationToken)
    {
        for (int i = 0; i < count; i++)
        {
            await Streams.AddAsync(Job.Memory, pages[i], round, flags, cancellationToken).ConfigureAwait(false);
            if ((i & 4095) == 4095)
            {
                cancellationToken.ThrowIfCancellationRequested();
                RemainingPages = count - i;
                MaybeReport();
            }
        }
    }

    /// <summary>Counts time spent moving pages (for the bandwidth estimate).</summary>
    public void AddTransferTime(TimeSpan t) => Interlocked.Add(ref _transferTicks, t.Ticks);

    public TimeSpan TransferTime => TimeSpan.FromTicks(Volatile.Read(ref _transferTicks));

    public long Timestamp() => _time.GetTimestamp();

    public TimeSpan Since(long timestamp) => _time.GetElapsedTime(timestamp);

    public void Pause(CancellationToken cancellationToken)
    {
        PausedAt = _time.GetUtcNow();
        Paused = true;
        Job.Mmu.Pause(cancellationToken);
    }

    public void MarkSwitchedOver(TimeSpan downtime)
    {
        SwitchedOver = true;
        Downtime = downtime;
        ResumedAt = PausedAt + downtime;
        MigrationTelemetry.Downtime.Record(downtime.TotalMilliseconds, new KeyValuePair<string, object?>("strategy", Strategy));
    }

    public void Offer(OutgoingMigration outgoing)
    {
        Job.LocalPages!.Offer(outgoing);
        Outgoing = outgoing;
    }

    public void SetThrottle(double throttle)
    {
        Job.Mmu.SetThrottle(throttle);
        if (throttle > MaxThrottle) MaxThrottle = throttle;
    }

    /// <summary>Puts the source back as it was (running, unthrottled) and tells the destination to discard its copy.</summary>
    public async Task RollbackAsync(string reason)
    {
        if (SwitchedOver) return;
        if (Paused)
        {
            Job.Mmu.Resume();
            Paused = false;
        }
        Job.Mmu.SetThrottle(_throttleBefore);
        if (Outgoing is not null)
        {
            Job.LocalPages!.Withdraw(Outgoing);
            Outgoing = null;
        }
        if (Streams is not null) await Streams.DisposeAsync().ConfigureAwait(false);
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await Channel.AsyncUnaryCall(PagesContract.AbortMigration, new AbortMigrationRequest { MigrationId = Job.MigrationId, Reason = reason },
                new CallOptions(CancellationToken: timeout.Token)).ResponseAsync.ConfigureAwait(false);
        }
        catch (Exception e) when (e is RpcException or OperationCanceledException or IOException or HttpRequestException)
        {
            // The destination is gone or unreachable: its copy goes with it.
            Activity?.AddEvent(new ActivityEvent("abort not delivered", tags: new ActivityTagsCollection { ["error"] = e.Message }));
        }
    }

    public MigrationReport BuildReport()
    {
        var c = Streams.Counters;
        string destination = Job.DestinationName ?? Job.Destination.Authority;
        return new MigrationReport
        {
            MigrationId = Job.MigrationId, Vm = Job.Vm, Strategy = Strategy, StartedAt = StartedAt, PausedAt = PausedAt, ResumedAt = ResumedAt,
            TotalTime = Elapsed, Downtime = Downtime, BytesSent = c.BytesSent,
            BytesSentPerDestination = new Dictionary<string, long> { [destination] = c.BytesSent },
            PagesSent = c.PagesSent, ZeroPagesSent = c.ZeroPagesSent, Rounds = Rounds.ToArray(), DirtyPagesPerSecond = DirtyPagesPerSecond,
            MaxThrottle = MaxThrottle, PostCopyPages = PostCopyPages, RemoteFaults = RemoteFaults, PagesServedToFaults = Outgoing?.PagesServed ?? 0,
            RemoteFaultP50 = FaultP50, RemoteFaultP99 = FaultP99, PagesVerified = PagesVerified, TransferTime = TransferTime,
            DataChannel = Streams.DataChannel,
        };
    }

    public async ValueTask DisposeAsync()
    {
        if (Outgoing is not null) Job.LocalPages!.Withdraw(Outgoing);
        if (Streams is not null) await Streams.DisposeAsync().ConfigureAwait(false);
        Channel.Dispose();
        foreach (var c in _streamChannels) c.Dispose();
        if (_pageList is not null) ArrayPool<long>.Shared.Return(_pageList);
        _pageList = null;
        Activity?.Dispose();
    }
}
