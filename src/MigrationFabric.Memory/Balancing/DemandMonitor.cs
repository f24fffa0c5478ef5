using System.Diagnostics;
using MigrationFabric.Memory.Tracking;

namespace MigrationFabric.Memory.Balancing;

/// <summary>Estimates a VM's memory demand from sampled access bits (VMMB): an LRU stack-distance histogram over sampled pages gives a miss-ratio curve.</summary>
/// <remarks>
/// Every epoch it test-and-clears the access bit of each sampled page; a sampled page seen accessed is
/// one reference, and its LRU stack distance among the sampled pages (how many other sampled pages
/// were referenced since its previous reference) says the smallest memory, in sampled pages, that
/// would have kept it. Scaling by the sampling rate turns that into guest pages. The demand is the
/// smallest memory whose miss ratio is at most <see cref="DemandMonitorOptions.MissRatioThreshold"/>.
/// The time spent sampling is measured so the monitor's own cost can be reported.
/// <para>
/// The bits it reads are cleared: give it the guest's <c>AccessBitmap</c> only when nothing else
/// harvests those bits; under a <c>PrivateVirtualMemory</c> give it its <c>ForwardedAccess</c>.
/// What it clears it keeps in <see cref="RecentAccess"/> for <see cref="DemandMonitorOptions.RecentEpochs"/>
/// epochs, so a reader of the access bits (split's hot/cold plan) reads both and still sees a hot sampled page.
/// </para>
/// </remarks>
public sealed class DemandMonitor : IAsyncDisposable, IDisposable
{
    private readonly AtomicPageBitmap _accessBits;
    private readonly DemandMonitorOptions _options;
    private readonly long[] _sampledPages;
    private readonly long[] _lastSeenEpoch;
    private readonly AtomicPageBitmap _recent;
    private readonly LruStackDistance _stack;
    private readonly double[] _histogram;
    private readonly Lock _gate = new();
    private readonly long _createdAt;
    private readonly CancellationTokenSource _lifetime = new();
    private Task _loop = Task.CompletedTask;
    private double _references;
    private double _coldMisses;
    private long _samplingTicks;
    private long _epochs;

    /// <summary>Creates a monitor over <paramref name="accessBits"/>; call <see cref="Start"/> for periodic sampling or <see cref="SampleOnce"/> to drive it.</summary>
    public DemandMonitor(AtomicPageBitmap accessBits, DemandMonitorOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(accessBits);
        _options = options ?? new DemandMonitorOptions();
        _options.Validate();
        _accessBits = accessBits;
        _sampledPages = ChooseSample(accessBits.PageCount, _options);
        _stack = new LruStackDistance(_sampledPages.Length);
        _histogram = new double[_sampledPages.Length];
        _lastSeenEpoch = new long[_sampledPages.Length];
        _recent = new AtomicPageBitmap(accessBits.PageCount);
        PagesPerSample = (double)accessBits.PageCount / _sampledPages.Length;
        _createdAt = Stopwatch.GetTimestamp();
    }

    /// <summary>Sampled pages whose access bit this monitor found set (and cleared) within the last <see cref="DemandMonitorOptions.RecentEpochs"/> epochs; other pages' bits are never set here.</summary>
    /// <remarks>"Recently accessed" is this or the access bit: the monitor takes the bits it samples, and without this a hot sampled page looks cold right after each epoch. A reader starting a window of its own clears both (as split's hot window does).</remarks>
    public AtomicPageBitmap RecentAccess => _recent;

    /// <summary>Pages whose access bits are sampled.</summary>
    public int SampledPages => _sampledPages.Length;

    /// <summary>Guest pages one sampled page stands for.</summary>
    public double PagesPerSample { get; }

    /// <summary>Epochs sampled so far.</summary>
    public long Epochs => Interlocked.Read(ref _epochs);

    /// <summary>Total time spent inside <see cref="SampleOnce"/> (the monitor's CPU cost on the sampling thread).</summary>
    public TimeSpan SamplingTime => Stopwatch.GetElapsedTime(0, Interlocked.Read(ref _samplingTicks));

    /// <summary>Sampling time over wall time since creation: the fraction of one core the monitor used.</summary>
    public double Overhead
    {
        get
        {
            var wall = Stopwatch.GetElapsedTime(_createdAt);
            return wall <= TimeSpan.Zero ? 0 : SamplingTime / wall;
        }
    }

    /// <summary>Starts sampling every <see cref="DemandMonitorOptions.SamplingInterval"/> on a background task.</summary>
    public void Start()
    {
        ObjectDisposedException.ThrowIf(_lifetime.IsCancellationRequested, this);
        if (!_loop.IsCompleted)
            throw new InvalidOperationException("The demand monitor is already sampling.");
        _loop = Task.Run(SampleLoopAsync);
    }

    /// <summary>One epoch: test-and-clears each sampled page's access bit and records a reference for each one set.</summary>
    public void SampleOnce()
    {
        var start = Stopwatch.GetTimestamp();
        lock (_gate)
        {
            var pages = _sampledPages;
            long epoch = _epochs + 1;
            for (var i = 0; i < pages.Length; i++)
            {
                if (!_accessBits.TestAndClear(pages[i]))
                {
                    if (_lastSeenEpoch[i] != 0 && epoch - _lastSeenEpoch[i] >= _options.RecentEpochs) _recent.Clear(pages[i]);
                    continue;
                }
                _lastSeenEpoch[i] = epoch;
                _recent.Set(pages[i]);
                var d = _stack.Access(i);
                if (d < 0) _coldMisses++;
                else
                {
                    _histogram[d]++;
                    _references++;
                }
            }
            if (++_epochs % _options.DecayEveryEpochs == 0)
            {
                for (var d = 0; d < _histogram.Length; d++) _histogram[d] *= 0.5;
                _references *= 0.5;
                _coldMisses *= 0.5;
            }
        }
        Interlocked.Add(ref _samplingTicks, Stopwatch.GetTimestamp() - start);
    }

    /// <summary>The miss-ratio curve so far: one point per sampled-page step of memory size.</summary>
    public MissRatioCurve GetCurve()
    {
        lock (_gate)
        {
            var n = _histogram.Length;
            var sizes = new long[n];
            var ratios = new double[n];
            double hits = 0;
            for (var m = 1; m <= n; m++)
            {
                hits += _histogram[m - 1];
                sizes[m - 1] = (long)Math.Ceiling(m * PagesPerSample);
                ratios[m - 1] = _references <= 0 ? 0 : Math.Max(0, (_references - hits) / _references);
            }
            return new MissRatioCurve(sizes, ratios, _references, _coldMisses);
        }
    }

    /// <summary>The memory demand in pages: the smallest memory with miss ratio at most the threshold.</summary>
    public long EstimateDemandPages() => Math.Min(GetCurve().DemandPages(_options.MissRatioThreshold), _accessBits.PageCount);

    /// <summary>Forgets the history (after a migration or a resize).</summary>
    public void Reset()
    {
        lock (_gate)
        {
            _stack.Reset();
            Array.Clear(_histogram);
            _references = 0;
            _coldMisses = 0;
        }
    }

    /// <summary>Stops periodic sampling.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_lifetime.IsCancellationRequested) return;
        _lifetime.Cancel();
        await _loop.ConfigureAwait(false);
        _lifetime.Dispose();
    }

    /// <inheritdoc/>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    private async Task SampleLoopAsync()
    {
        using var timer = new PeriodicTimer(_options.SamplingInterval, _options.TimeProvider);
        try
        {
            while (await timer.WaitForNextTickAsync(_lifetime.Token).ConfigureAwait(false))
                SampleOnce();
        }
        catch (OperationCanceledException) when (_lifetime.IsCancellationRequested)
        {
        }
    }

    private static long[] ChooseSample(long pageCount, DemandMonitorOptions options)
    {
        var every = Math.Max(options.SampleEvery, (pageCount + options.MaxSampledPages - 1) / options.MaxSampledPages);
        var picked = new List<long>((int)Math.Min(pageCount / every + 16, options.MaxSampledPages + 16L));
        for (long p = 0; p < pageCount; p++)
        {
            if (Mix((ulong)p ^ options.SamplingSeed) % (ulong)every == 0) picked.Add(p);
        }
        if (picked.Count > options.MaxSampledPages) picked.RemoveRange(options.MaxSampledPages, picked.Count - options.MaxSampledPages);
        if (picked.Count == 0) picked.Add(0);
        return [.. picked];
    }

    // splitmix64's finalizer: a page's selection does not depend on its neighbours'.
    private static ulong Mix(ulong x)
    {
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9UL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBUL;
        return x ^ (x >> 31);
    }
}
