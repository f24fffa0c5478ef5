using System.Runtime.InteropServices;
using System.Threading.Channels;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Tracking;

namespace MigrationFabric.Memory.Swap;

/// <summary>A VM's private virtual memory (VMemDirect): a fixed physical share of its guest memory, the rest in a private swap file.</summary>
/// <remarks>
/// Install it as the MMU's fault handler: a vCPU touching a Swapped page faults and is paged in per
/// <see cref="PagingMode"/>. It observes every page that becomes Resident so the chunk-queue LRU knows
/// each chunk with RAM; the page-out thread keeps the footprint at the share minus a free reserve by
/// evicting the LRU's head chunks into their swap slots. <see cref="PlacePage"/> writes an incoming
/// page where it belongs without paging (migration into a smaller host) and <see cref="ReadPage"/>
/// reads a page wherever it lives without paging it in (migration out of private memory).
/// <para>
/// Concurrency: every transition of a chunk's pages made here holds that chunk's lock (striped), so
/// an eviction, a page-in, a placement and a read-through of the same chunk never interleave; the LRU
/// has its own lock taken after (never before) a chunk lock. vCPUs take no lock: they wait on the
/// Evicting/Installing states through the MMU. This object owns the Swapped state: nothing else
/// should move a page into or out of it while it is attached.
/// </para>
/// </remarks>
public sealed class PrivateVirtualMemory : IPageFaultHandler, IResidencyObserver, IAsyncDisposable, IDisposable
{
    private const int LockStripes = 1024;

    private readonly GuestMemory _memory;
    private readonly PrivateVirtualMemoryOptions _options;
    private readonly PrivateSwapFile _swap;
    private readonly SwapSlotAllocator _runs;
    private readonly ChunkQueueLru _lru;
    private readonly Lock _lruLock = new();
    private readonly Lock[] _chunkLocks;
    private readonly int[] _runOfChunk;
    private readonly bool[] _evicting;
    private readonly bool[] _touched;
    private readonly int[] _touchedList;
    private readonly byte[] _pageInQueued;
    private readonly int[] _stageOfChunk;
    private readonly int[] _chunkOfStage;
    private readonly nint[] _stageBuffers;
    private readonly ulong[] _stagedBits;
    private readonly int[] _stagedCount;
    private readonly Stack<int> _freeStages = new();
    private readonly Lock _stageLock = new();
    private readonly int _stageWords;
    private int _stageCursor;
    private readonly Channel<int> _pageInQueue = Channel.CreateUnbounded<int>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Channel<int> _placementWrites = Channel.CreateUnbounded<int>(new UnboundedChannelOptions { SingleReader = false });
    private readonly Task _placementWriter;
    private long _pendingPlacementWrites;
    private readonly SemaphoreSlim _pageOutSignal = new(0, 1);
    private readonly CancellationTokenSource _lifetime = new();
    private readonly Task _pageOutThread;
    private readonly Task _pageInThread;
    private readonly Task _scanThread;
    private long _share;
    private long _reserve;
    private readonly Lock _scanLock = new();
    // Placements into different chunks hold different chunk locks, so the share's room check and the install it allows
    // must be one step under a lock of their own: else concurrent page streams overshoot the share and the page-out
    // thread pages out during migration. Taken inside a chunk lock, before the LRU's.
    private readonly Lock _placeRoomLock = new();
    private readonly FrameRecycler? _recycler;
    private Exception? _lastBackgroundError;
    private long _pendingPageIns;
    private long _pagesBeingEvicted;
    private int _evictionsInFlight;
    private int _scans;
    private int _disposed;

    /// <summary>Attaches private virtual memory to <paramref name="memory"/>; call before its vCPUs run, then install it as the MMU's fault handler.</summary>
    public PrivateVirtualMemory(GuestMemory memory, PrivateVirtualMemoryOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(memory);
        _options = options ?? new PrivateVirtualMemoryOptions();
        _options.Validate(memory.PageCount);
        _memory = memory;
        _share = _options.SharePages ?? memory.ResidentBudgetPages;
        ChunkPages = _options.ChunkPages;
        ChunkCount = checked((int)((memory.PageCount + ChunkPages - 1) / ChunkPages));
        _reserve = ReserveFor(_share);

        var swapRuns = (int)Math.Min(ChunkCount, ((_options.SwapPages ?? memory.PageCount) + ChunkPages - 1) / ChunkPages);
        if ((long)swapRuns * ChunkPages > int.MaxValue)
            throw new ArgumentException($"PrivateVirtualMemoryOptions.SwapPages: {swapRuns * (long)ChunkPages} slots exceed the {int.MaxValue} a swap file can hold.", nameof(options));
        var path = _options.SwapFilePath ?? Path.Combine(Path.GetTempPath(), $"mf-vm-{Guid.NewGuid():N}.swap");
        _swap = PrivateSwapFile.Create(path, swapRuns * ChunkPages, directIo: _options.DirectIo);
        if (_options.PrewriteSwapFile)
        {
            try
            {
                _swap.Prewrite(CancellationToken.None);
            }
            catch
            {
                _swap.Dispose();
                throw;
            }
        }
        _runs = new SwapSlotAllocator(swapRuns, ChunkPages);
        if (_options.Mode != PagingMode.Naive && _options.RecycledFrameChunks > 0 && OperatingSystem.IsLinux())
            _recycler = new FrameRecycler(_options.RecycledFrameChunks, ChunkPages);

        _lru = new ChunkQueueLru(ChunkCount, _options.QueueBits);
        _chunkLocks = new Lock[Math.Min(LockStripes, ChunkCount)];
        for (var i = 0; i < _chunkLocks.Length; i++) _chunkLocks[i] = new Lock();
        _runOfChunk = new int[ChunkCount];
        Array.Fill(_runOfChunk, -1);
        _evicting = new bool[ChunkCount];
        _touched = new bool[ChunkCount];
        _touchedList = new int[ChunkCount];
        _pageInQueued = new byte[ChunkCount];
        _stageOfChunk = new int[ChunkCount];
        Array.Fill(_stageOfChunk, -1);
        var stages = _options.Mode == PagingMode.Naive ? 0 : Math.Min(_options.PlacementStagingChunks, ChunkCount);
        _stageWords = (ChunkPages + 63) / 64;
        _chunkOfStage = new int[stages];
        _stageBuffers = new nint[stages];
        _stagedBits = new ulong[stages * _stageWords];
        _stagedCount = new int[stages];
        for (var i = stages - 1; i >= 0; i--)
        {
            _stageBuffers[i] = AllocateStage(ChunkPages);
            _chunkOfStage[i] = -1;
            _freeStages.Push(i);
        }
        ForwardedAccess = new AtomicPageBitmap(memory.PageCount);

        // Pages made resident before attaching are tracked like page-ins.
        for (var c = 0; c < ChunkCount; c++)
        {
            if (CountIn(c, PageResidency.Resident) > 0) _lru.Append(c);
        }
        memory.SetResidencyObserver(this);

        _pageOutThread = Task.Run(PageOutLoopAsync);
        _pageInThread = Task.Run(PageInLoopAsync);
        _placementWriter = _options.AsyncPlacementWrites && stages > 0
            ? Task.WhenAll(Enumerable.Range(0, _options.PlacementWriters).Select(StartPlacementWriter))
            : Task.CompletedTask;
        _scanThread = _options.ScanAccessBitsPeriodically ? Task.Run(ScanLoopAsync) : Task.CompletedTask;
    }

    /// <summary>The guest memory paged.</summary>
    public GuestMemory Memory => _memory;

    /// <summary>The paging method.</summary>
    public PagingMode Mode => _options.Mode;

    /// <summary>The physical share in pages: fixed while the VM runs, changed only by a re-balance (<see cref="SetSharePages"/>).</summary>
    public long SharePages => Volatile.Read(ref _share);

    /// <summary>Pages of the share that first copies leave to retransferred (hot) pages (<see cref="PrivateVirtualMemoryOptions.HotReservePages"/>).</summary>
    public long HotReservePages => _options.HotReservePages;

    /// <summary>Pages the page-out thread keeps free below the share (direct placement leaves them free too).</summary>
    public long FreeReservePages => Volatile.Read(ref _reserve);

    /// <summary>Applies a new share (e.g. a <c>MemoryRebalancer</c> target): a smaller one is paged out to by the page-out thread, a larger one is simply room to grow.</summary>
    public void SetSharePages(long pages)
    {
        if (pages <= 0 || pages > _memory.PageCount)
            throw new ArgumentOutOfRangeException(nameof(pages), pages, $"the share must be within 1..{_memory.PageCount} pages.");
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        lock (_lruLock)
        {
            Volatile.Write(ref _reserve, ReserveFor(pages));
            Volatile.Write(ref _share, pages);
        }
        if (NeedsPageOut()) SignalPageOut();
    }

    private long ReserveFor(long share) => Math.Min(_options.FreeReservePages ?? ChunkPages, share / 2);

    /// <summary>Pages per chunk.</summary>
    public int ChunkPages { get; }

    /// <summary>Chunks covering the guest memory (the last may be partial).</summary>
    public int ChunkCount { get; }

    /// <summary>The private swap file.</summary>
    public PrivateSwapFile SwapFile => _swap;

    /// <summary>Where evicted chunks' frames wait for the next page-in (VMemDirect with <see cref="PrivateVirtualMemoryOptions.RecycledFrameChunks"/> above 0 on Linux), else null.</summary>
    public FrameRecycler? Recycler => _recycler;

    /// <summary>Paging and placement counters.</summary>
    public PagingStatistics Statistics { get; } = new();

    /// <summary>Access bits this pager harvested from the MMU (harvesting clears them there), kept for other samplers such as the demand monitor.</summary>
    public AtomicPageBitmap ForwardedAccess { get; }

    /// <summary>The last error the page-out or page-in thread hit (swap full, I/O error), or null.</summary>
    public Exception? LastBackgroundError => Volatile.Read(ref _lastBackgroundError);

    /// <summary>The chunk-queue LRU's queue of <paramref name="chunk"/> (-1: no RAM); diagnostics.</summary>
    public int QueueOfChunk(int chunk)
    {
        lock (_lruLock) return _lru.QueueOf(chunk);
    }

    /// <inheritdoc/>
    public ValueTask ResolveAsync(PageFault fault, CancellationToken cancellationToken)
    {
        if (fault.Residency != PageResidency.Swapped)
            return ValueTask.FromException(new PageFaultException(fault.Page,
                $"private virtual memory resolves Swapped pages only; this page is {fault.Residency}."));
        try
        {
            cancellationToken.ThrowIfCancellationRequested();
            Statistics.Fault();
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            var page = fault.Page.Value;
            var chunk = ChunkOf(page);
            switch (_options.Mode)
            {
                case PagingMode.AsyncMethod1:
                    MakeRoom(CountIn(chunk, PageResidency.Swapped));
                    PageInRange(chunk, 0, PagesIn(chunk), sync: true);
                    SignalPageOut();
                    break;
                case PagingMode.AsyncMethod2:
                    MakeRoom(1);
                    PageInOne(page, sync: true);
                    QueueRestOfChunk(chunk);
                    SignalPageOut();
                    break;
                default:
                    // Linux's swap-in reads an aligned cluster of slots around the faulting one (vm.page-cluster).
                    var window = Math.Min(_options.NaiveReadaheadPages, ChunkPages);
                    var index = (int)(page - FirstPage(chunk));
                    var from = index & ~(window - 1);
                    MakeRoom(Math.Min(window, PagesIn(chunk) - from));
                    PageInRange(chunk, from, Math.Min(from + window, PagesIn(chunk)), sync: true);
                    break;
            }
            Statistics.FaultResolved(started);
            return ValueTask.CompletedTask;
        }
        catch (Exception e)
        {
            return ValueTask.FromException(e);
        }
    }

    /// <summary>Writes an incoming page where it belongs, without paging: in place if it is in memory or swap, else into memory while the share (minus the free reserve) has room, else into its swap slot.</summary>
    /// <remarks>In <see cref="PagingMode.Naive"/> it behaves as an OS would: the page goes to memory, paging others out under pressure, and a swapped page is paged in first.</remarks>
    /// <returns>Where the page now lives.</returns>
    public PlacementTarget PlacePage(long page, ReadOnlySpan<byte> contents)
    {
        CheckPage(page);
        if (contents.Length != Page.Size)
            throw new ArgumentException($"page contents must be exactly {Page.Size} bytes, were {contents.Length}.", nameof(contents));
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            return PlacePageTimed(page, contents);
        }
        finally
        {
            Statistics.PlaceTime(started);
        }
    }

    private PlacementTarget PlacePageTimed(long page, ReadOnlySpan<byte> contents)
    {
        var chunk = ChunkOf(page);
        var spin = new SpinWait();
        while (true)
        {
            if (_options.Mode == PagingMode.Naive && _memory.GetResidency(page) != PageResidency.Resident)
                MakeRoom(1);
            // Every staging buffer holds another chunk: write one out before taking this chunk's lock (never two chunk locks at once).
            if (_stageBuffers.Length > 0 && _stageOfChunk[chunk] < 0 && FreeStageCount == 0) FlushOneStage();
            lock (ChunkLock(chunk))
            {
                var r = _memory.GetResidency(page);
                switch (r)
                {
                    case PageResidency.Resident:
                        contents.CopyTo(_memory.GetPageBytes(page));
                        Statistics.Placed(PlacementTarget.Memory, update: true);
                        return PlacementTarget.Memory;
                    case PageResidency.Swapped when _options.Mode == PagingMode.Naive:
                        PageInLocked(page, sync: true);
                        continue;
                    case PageResidency.Swapped when _options.HotReservePages > 0 && TryPromoteLocked(chunk, page, contents):
                        Statistics.Placed(PlacementTarget.Memory, update: true);
                        return PlacementTarget.Memory;
                    case PageResidency.Swapped:
                        // A retransfer updates the page in place: in its chunk's staging buffer (taking one if free,
                        // so the stop-and-copy's retransfers cost a copy, written out as runs later), else in its slot.
                        if (Stage(chunk, (int)(page - FirstPage(chunk)), contents) < 0) WritePlaced(SlotOf(page), contents);
                        Statistics.Placed(PlacementTarget.Swap, update: true);
                        return PlacementTarget.Swap;
                    case PageResidency.Zero or PageResidency.Remote or PageResidency.Ballooned:
                        // The free reserve stays free so the page-out thread never evicts placed pages (no paging during migration).
                        if (_options.Mode == PagingMode.Naive)
                        {
                            if (!_memory.TryInstall(page, r, contents)) continue;
                            Statistics.Placed(PlacementTarget.Memory, update: false);
                            return PlacementTarget.Memory;
                        }
                        // Once the share is full the check alone sends the rest to swap: no lock per page for 3/4 of a VM.
                        if (_memory.ResidentPages < SharePages - FreeReservePages - _options.HotReservePages)
                        {
                            lock (_placeRoomLock)
                            {
                                if (_memory.ResidentPages < SharePages - FreeReservePages - _options.HotReservePages)
                                {
                                    if (!_memory.TryInstall(page, r, contents)) continue;
                                    Statistics.Placed(PlacementTarget.Memory, update: false);
                                    return PlacementTarget.Memory;
                                }
                            }
                        }
                        var index = (int)(page - FirstPage(chunk));
                        var slot = EnsureRun(chunk) + index;
                        var stage = Stage(chunk, index, contents);
                        if (stage < 0) WritePlaced(slot, contents);
                        if (!_memory.TryTransition(page, r, PageResidency.Swapped))
                        {
                            if (stage >= 0) Unstage(stage, index);
                            continue;
                        }
                        Statistics.Placed(PlacementTarget.Swap, update: false);
                        // A chunk's pages mostly arrive in order: its last page (or a full buffer) is the time to write it as one run.
                        if (stage >= 0 && (index == PagesIn(chunk) - 1 || _stagedCount[stage] == PagesIn(chunk))) StageComplete(chunk);
                        return PlacementTarget.Swap;
                }
            }
            // Evicting/Installing by someone outside this pager (a balloon, a vCPU's first touch): wait it out.
            spin.SpinOnce(sleep1Threshold: 20);
        }
    }

    /// <summary>Reads a page wherever it lives (memory or swap) without paging it in; returns where it was read from.</summary>
    /// <exception cref="InvalidOperationException">The page is Remote: its bytes are on another host.</exception>
    public PageResidency ReadPage(long page, Span<byte> destination)
    {
        CheckPage(page);
        if (destination.Length != Page.Size)
            throw new ArgumentException($"the destination must be exactly {Page.Size} bytes, was {destination.Length}.", nameof(destination));
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        var chunk = ChunkOf(page);
        var spin = new SpinWait();
        while (true)
        {
            lock (ChunkLock(chunk))
            {
                var r = _memory.GetResidency(page);
                switch (r)
                {
                    case PageResidency.Resident:
                        _memory.GetPageBytes(page).CopyTo(destination);
                        Statistics.ReadThrough(fromSwap: false);
                        return r;
                    case PageResidency.Swapped:
                        var staged = _stageOfChunk[chunk];
                        if (staged >= 0 && IsStaged(staged, (int)(page - FirstPage(chunk))))
                            StageSpan(staged, (int)(page - FirstPage(chunk)), 1).CopyTo(destination);
                        else
                            _swap.Read(SlotOf(page), destination);
                        Statistics.ReadThrough(fromSwap: true);
                        return r;
                    case PageResidency.Zero or PageResidency.Ballooned:
                        destination.Clear();
                        return r;
                    case PageResidency.Remote:
                        throw new InvalidOperationException($"page {page} is Remote: its bytes are on another host, not in this private memory.");
                }
            }
            spin.SpinOnce(sleep1Threshold: 20);
        }
    }

    /// <summary>Harvests the MMU's access bits into the LRU (each accessed chunk moves up) and ages it every <see cref="PrivateVirtualMemoryOptions.ScansPerAging"/> scans.</summary>
    public void ScanAccessBits()
    {
        lock (_scanLock) ScanAccessBitsLocked();
    }

    private void ScanAccessBitsLocked()
    {
        var visitor = new TouchVisitor(_touched, _touchedList, ChunkPages, ForwardedAccess);
        _memory.Accessed.FetchAndClear(ref visitor);
        lock (_lruLock)
        {
            for (var i = 0; i < visitor.Count; i++)
            {
                var c = _touchedList[i];
                _touched[c] = false;
                _lru.TryTouch(c);
            }
            if (++_scans % _options.ScansPerAging == 0) _lru.Age();
        }
    }

    /// <summary>Ages the LRU now (2^m queues into 2^(m-1)).</summary>
    public void AgeNow()
    {
        lock (_lruLock) _lru.Age();
    }

    /// <summary>Waits until queued asynchronous page-ins are done and the page-out thread has brought the footprint to its target.</summary>
    /// <exception cref="InvalidOperationException">The page-out or page-in thread failed meanwhile (e.g. the swap is full), so it never will.</exception>
    public async Task SettleAsync(CancellationToken cancellationToken = default)
    {
        var before = LastBackgroundError;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            ObjectDisposedException.ThrowIf(_disposed != 0, this);
            if (Volatile.Read(ref _pendingPageIns) == 0 && Volatile.Read(ref _evictionsInFlight) == 0 && !NeedsPageOut()
                && Volatile.Read(ref _pendingPlacementWrites) == 0)
                return;
            if (LastBackgroundError is { } failed && !ReferenceEquals(failed, before))
                throw new InvalidOperationException($"paging cannot settle: {failed.Message}", failed);
            SignalPageOut();
            await Task.Delay(1, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <inheritdoc/>
    void IResidencyObserver.OnResident(PageNumber page, PageResidency from)
    {
        var chunk = ChunkOf(page.Value);
        lock (_lruLock)
        {
            if (!_evicting[chunk] && !_lru.Contains(chunk)) _lru.Append(chunk);
        }
        if (!NeedsPageOut()) return;
        SignalPageOut();
        // The share is a hard limit: when the page-out thread falls behind, whoever grew the footprint
        // (a vCPU's first touch, a deflate) waits for the page-outs, as a fixed physical share would make it.
        // Our own installs hold the chunk's lock and made room beforehand; reclaiming under it could deadlock.
        if (CommittedPages > SharePages && !ChunkLock(chunk).IsHeldByCurrentThread && _disposed == 0)
            MakeRoom(0);
    }

    /// <summary>Stops the paging threads, detaches from the memory and deletes the swap file.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _lifetime.Cancel();
        _pageInQueue.Writer.TryComplete();
        _placementWrites.Writer.TryComplete();
        try
        {
            await Task.WhenAll(_pageOutThread, _pageInThread, _scanThread, _placementWriter).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        _memory.SetResidencyObserver(null);
        DisposeFlushRings();
        _swap.Dispose();
        _recycler?.Dispose();
        FreeStageBuffers();
        _lifetime.Dispose();
    }

    private unsafe void FreeStageBuffers()
    {
        lock (_stageLock)
        {
            for (var i = 0; i < _stageBuffers.Length; i++)
            {
                NativeMemory.AlignedFree((void*)_stageBuffers[i]);
                _stageBuffers[i] = 0;
            }
        }
    }

    /// <inheritdoc/>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    // Naive swap has no free reserve: like kswapd it only pages out once the share is exceeded.
    private bool NeedsPageOut() => CommittedPages > SharePages - (_options.Mode == PagingMode.Naive ? 0 : FreeReservePages);

    // Resident pages not already on their way out: the page-out thread and a synchronous reclaim must
    // not both evict for the same shortfall.
    private long CommittedPages => _memory.ResidentPages - Volatile.Read(ref _pagesBeingEvicted);

    private void SignalPageOut()
    {
        if (_pageOutSignal.CurrentCount == 0)
        {
            try { _pageOutSignal.Release(); }
            catch (SemaphoreFullException) { }
        }
    }

    // Synchronous reclaim: the caller needs `pages` more pages of RAM now and waits for the page-outs.
    private void MakeRoom(long pages)
    {
        var attempts = ChunkCount;
        while (CommittedPages + pages > SharePages && attempts-- > 0)
        {
            if (!EvictOneChunk(sync: true)) break;
        }
    }

    private bool EvictOneChunk(bool sync)
    {
        int victim;
        long leaving;
        lock (_lruLock)
        {
            if (!_lru.TryTakeVictim(out victim)) return false;
            _evicting[victim] = true;
            Interlocked.Increment(ref _evictionsInFlight);
            leaving = CountIn(victim, PageResidency.Resident);
            Interlocked.Add(ref _pagesBeingEvicted, leaving);
        }
        try
        {
            EvictChunk(victim, sync);
        }
        finally
        {
            Interlocked.Add(ref _pagesBeingEvicted, -leaving);
            Interlocked.Decrement(ref _evictionsInFlight);
        }
        return true;
    }

    private void EvictChunk(int chunk, bool sync)
    {
        var first = FirstPage(chunk);
        var count = PagesIn(chunk);
        var evicted = 0;
        try
        {
            lock (ChunkLock(chunk))
            {
                int firstSlot;
                try
                {
                    firstSlot = EnsureRun(chunk);
                }
                catch (InvalidOperationException)
                {
                    // Swap is full: the chunk keeps its RAM and its place; the caller sees no progress.
                    lock (_lruLock) _evicting[chunk] = false;
                    ReappendIfResident(chunk);
                    throw;
                }
                if (_memory.BeginEviction(first, count) > 0)
                {
                    var io = System.Diagnostics.Stopwatch.GetTimestamp();
                    try
                    {
                        WriteEvictingRuns(first, count, firstSlot);
                        Statistics.PageOutIo(io);
                    }
                    catch
                    {
                        _memory.CancelEviction(first, count);
                        throw;
                    }
                    evicted = _memory.CompleteEviction(first, count, PageResidency.Swapped, _recycler);
                }
                lock (_lruLock) _evicting[chunk] = false;
                ReappendIfResident(chunk);
            }
        }
        finally
        {
            if (evicted > 0) Statistics.PagedOut(evicted, sync);
        }
    }

    private void WriteEvictingRuns(long first, int count, int firstSlot)
    {
        var i = 0;
        while (i < count)
        {
            if (_memory.GetResidency(first + i) != PageResidency.Evicting) { i++; continue; }
            var start = i;
            while (i < count && _memory.GetResidency(first + i) == PageResidency.Evicting) i++;
            _swap.WriteRun(firstSlot + start, i - start, _memory.GetRangeBytes(first + start, i - start));
        }
    }

    private void ReappendIfResident(int chunk)
    {
        // Pages a vCPU first-touched while the chunk was being evicted kept their RAM: track them again.
        if (CountIn(chunk, PageResidency.Resident) == 0) return;
        lock (_lruLock)
        {
            if (!_evicting[chunk] && !_lru.Contains(chunk)) _lru.Append(chunk);
        }
    }

    // Method 1 (the whole chunk) and naive readahead (an aligned window): every Swapped page of chunk indexes
    // [from, to) comes in, in as few reads as the layout allows.
    private void PageInRange(int chunk, int from, int to, bool sync)
    {
        var first = FirstPage(chunk);
        lock (ChunkLock(chunk))
        {
            FlushStageLocked(chunk);
            var run = _runOfChunk[chunk];
            if (run < 0) return;
            var firstSlot = _runs.FirstSlot(run);
            var paged = 0;
            var i = from;
            while (i < to)
            {
                if (_memory.BeginInstall(first + i, PageResidency.Swapped).IsEmpty) { i++; continue; }
                var start = i++;
                while (i < to && !_memory.BeginInstall(first + i, PageResidency.Swapped).IsEmpty) i++;
                // The whole chunk comes in and is overwritten whole: onto an evicted chunk's frames if one is parked.
                if (_recycler is not null && i - start == _recycler.SlotPages) _memory.AdoptRecycledFrames(_recycler, first + start, i - start);
                var io = System.Diagnostics.Stopwatch.GetTimestamp();
                try
                {
                    _swap.ReadRun(firstSlot + start, i - start, _memory.GetRangeBytes(first + start, i - start));
                    Statistics.PageInIo(io);
                }
                catch
                {
                    for (var p = start; p < i; p++) _memory.AbortInstall(first + p, PageResidency.Swapped);
                    throw;
                }
                for (var p = start; p < i; p++) _memory.CompleteInstall(first + p, PageResidency.Swapped);
                paged += i - start;
            }
            FreeRunIfUnused(chunk);
            if (paged > 0) Statistics.PagedIn(paged, sync);
        }
    }

    private void PageInOne(long page, bool sync)
    {
        lock (ChunkLock(ChunkOf(page)))
        {
            PageInLocked(page, sync);
        }
    }

    private void PageInLocked(long page, bool sync)
    {
        var chunk = ChunkOf(page);
        FlushStageLocked(chunk);
        var dest = _memory.BeginInstall(page, PageResidency.Swapped);
        if (dest.IsEmpty) return;
        var io = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            _swap.Read(SlotOf(page), dest);
            Statistics.PageInIo(io);
        }
        catch
        {
            _memory.AbortInstall(page, PageResidency.Swapped);
            throw;
        }
        _memory.CompleteInstall(page, PageResidency.Swapped);
        Statistics.PagedIn(1, sync);
        FreeRunIfUnused(chunk);
    }

    private void QueueRestOfChunk(int chunk)
    {
        if (Interlocked.Exchange(ref _pageInQueued[chunk], 1) != 0) return;
        Interlocked.Increment(ref _pendingPageIns);
        if (!_pageInQueue.Writer.TryWrite(chunk))
        {
            Interlocked.Decrement(ref _pendingPageIns);
            Volatile.Write(ref _pageInQueued[chunk], 0);
        }
    }

    private async Task PageInLoopAsync()
    {
        var reader = _pageInQueue.Reader;
        try
        {
            while (await reader.WaitToReadAsync(_lifetime.Token).ConfigureAwait(false))
            {
                while (reader.TryRead(out var chunk))
                {
                    Volatile.Write(ref _pageInQueued[chunk], 0);
                    try
                    {
                        PageInRest(chunk);
                    }
                    catch (Exception e) when (e is IOException or InvalidOperationException)
                    {
                        // The faulting page is already in; the rest will fault in synchronously if touched.
                        Volatile.Write(ref _lastBackgroundError, e);
                    }
                    finally
                    {
                        Interlocked.Decrement(ref _pendingPageIns);
                    }
                }
            }
        }
        catch (OperationCanceledException) when (_lifetime.IsCancellationRequested)
        {
        }
    }

    // Method 2's background half: the chunk's other Swapped pages, one lock hold per page so a vCPU faulting on one of them waits for one read, not the chunk.
    private void PageInRest(int chunk)
    {
        var first = FirstPage(chunk);
        var count = PagesIn(chunk);
        for (var i = 0; i < count && !_lifetime.IsCancellationRequested; i++)
        {
            if (_memory.GetResidency(first + i) != PageResidency.Swapped) continue;
            while (CommittedPages + 1 > SharePages && EvictOneChunk(sync: false))
            {
            }
            PageInOne(first + i, sync: false);
        }
        SignalPageOut();
    }

    private async Task PageOutLoopAsync()
    {
        try
        {
            while (true)
            {
                await _pageOutSignal.WaitAsync(_lifetime.Token).ConfigureAwait(false);
                var attempts = ChunkCount;
                try
                {
                    while (NeedsPageOut() && attempts-- > 0 && !_lifetime.IsCancellationRequested)
                    {
                        if (!EvictOneChunk(sync: false)) break;
                    }
                }
                catch (Exception e) when (e is IOException or InvalidOperationException)
                {
                    // The thread must outlive a full or failing swap; the error stays visible to callers and tests.
                    Volatile.Write(ref _lastBackgroundError, e);
                }
            }
        }
        catch (OperationCanceledException) when (_lifetime.IsCancellationRequested)
        {
        }
    }

    // Caller holds the chunk's lock; its staged pages are complete. Written by the placement writer, so the stream that
    // placed the last page goes on receiving instead of waiting for the disk (and for a core to wake it after the write).
    private void StageComplete(int chunk)
    {
        if (!_options.AsyncPlacementWrites)
        {
            FlushStageLocked(chunk);
            return;
        }
        Interlocked.Increment(ref _pendingPlacementWrites);
        if (!_placementWrites.Writer.TryWrite(chunk))
        {
            Interlocked.Decrement(ref _pendingPlacementWrites);
            FlushStageLocked(chunk);
        }
    }

    /// <summary>Why a placement writer thread did not get <see cref="PrivateVirtualMemoryOptions.PlacementWriterSlice"/> (it runs with the kernel's default), or null.</summary>
    public string? PlacementWriterSliceRefusal => Volatile.Read(ref _writerSliceRefusal);

    private string? _writerSliceRefusal;

    // A thread of its own, not the pool's: each write blocks in the kernel, and the page streams need the pool's threads meanwhile.
    private Task StartPlacementWriter(int index)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                PlacementWriteLoop();
                done.SetResult();
            }
            catch (Exception e)
            {
                done.SetException(e);
            }
        })
        { IsBackground = true, Name = $"mf-pvm-writer-{index}" };
        thread.Start();
        return done.Task;
    }

    private void PlacementWriteLoop()
    {
        if (_options.PlacementWriterSlice is { } slice && SchedulerSlice.TrySetForCurrentThread(slice) is { } refusal)
            Volatile.Write(ref _writerSliceRefusal, refusal);
        var ring = CreatePlacementRing();
        var reader = _placementWrites.Reader;
        try
        {
            while (reader.WaitToReadAsync(_lifetime.Token).AsTask().GetAwaiter().GetResult())
            {
                while (reader.TryRead(out var chunk))
                {
                    try
                    {
                        // Under the chunk's lock: a retransfer into this chunk meanwhile either lands in the buffer before the
                        // write or stages again after it, never in a buffer being written and then freed.
                        lock (ChunkLock(chunk)) FlushStageLocked(chunk, ref ring);
                    }
                    catch (Exception e) when (e is IOException or InvalidOperationException or ObjectDisposedException)
                    {
                        // The pages stay staged and served from the buffer; a page-in or FlushPlacements retries the write.
                        Volatile.Write(ref _lastBackgroundError, e);
                    }
                    finally
                    {
                        Interlocked.Decrement(ref _pendingPlacementWrites);
                    }
                }
            }
        }
        catch (OperationCanceledException) when (_lifetime.IsCancellationRequested)
        {
        }
        finally
        {
            ring?.Dispose();
        }
    }

    /// <summary>Why the placement writers, or the streams writing a staged chunk out themselves, write with pwrite instead of an io_uring with the staging buffers registered (<see cref="PrivateVirtualMemoryOptions.PlacementWritesOnIoUring"/>), or null.</summary>
    public string? PlacementRingRefusal => Volatile.Read(ref _ringRefusal);

    private string? _ringRefusal;

    // A ring for one thread at a time (a writer's own, or one a stream rents for its flush), with every staging buffer
    // registered: its writes skip pinning their pages.
    private IoUring? CreatePlacementRing(string fallback = "placement writes use pwrite")
    {
        if (!_options.PlacementWritesOnIoUring || _stageBuffers.Length == 0) return null;
        var ring = IoUring.TryCreate(PlacementRingEntries, _stageBuffers, ChunkPages * Page.Size, out var refusal);
        if (refusal is not null) Volatile.Write(ref _ringRefusal, refusal + "; " + fallback);
        return ring;
    }

    // Writes in flight per flush: a chunk's staged pages are mostly one run, at most one run per two pages.
    private const int PlacementRingEntries = 32;

    private async Task ScanLoopAsync()
    {
        using var timer = new PeriodicTimer(_options.AccessScanInterval, _options.TimeProvider);
        try
        {
            while (await timer.WaitForNextTickAsync(_lifetime.Token).ConfigureAwait(false))
                ScanAccessBits();
        }
        catch (OperationCanceledException) when (_lifetime.IsCancellationRequested)
        {
        }
    }

    // Caller holds the chunk's lock.
    private int EnsureRun(int chunk)
    {
        var run = _runOfChunk[chunk];
        if (run < 0)
        {
            if (!_runs.TryAllocate(out run))
                throw new InvalidOperationException(
                    $"private swap '{_swap.Path}' is full ({_runs.RunCount} chunks of {ChunkPages} pages; PrivateVirtualMemoryOptions.SwapPages).");
            _runOfChunk[chunk] = run;
        }
        return _runs.FirstSlot(run);
    }

    // Caller holds the chunk's lock.
    private void FreeRunIfUnused(int chunk)
    {
        var run = _runOfChunk[chunk];
        if (run < 0 || CountIn(chunk, PageResidency.Swapped) > 0) return;
        _runOfChunk[chunk] = -1;
        _runs.Free(run);
    }

    /// <summary>Writes every directly placed page still gathered in a staging buffer to its swap slot (a migration's pages are all placed; the VM runs).</summary>
    public void FlushPlacements()
    {
        for (var st = 0; st < _stageBuffers.Length; st++)
        {
            var chunk = Volatile.Read(ref _chunkOfStage[st]);
            if (chunk < 0) continue;
            lock (ChunkLock(chunk)) FlushStageLocked(chunk);
        }
    }

    /// <summary>Puts RAM behind the pager's fixed host memory, its placement staging buffers, ahead of their first use (a destination preallocating its reservation before pages arrive).</summary>
    /// <remarks>
    /// The share's own frames are set aside by the migration's placement (PrivateMemoryPlacement.Preallocate), which
    /// knows which pages land in memory. Buffers holding staged pages are left alone, so this is safe at any time.
    /// </remarks>
    /// <returns>Bytes preallocated: the free staging buffers' (0 in <see cref="PagingMode.Naive"/>, which stages nothing).</returns>
    public unsafe long PreallocateStaging()
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        long bytes = 0;
        var size = (nuint)ChunkPages * Page.Size;
        lock (_stageLock)
        {
            // Only free buffers: a taken one holds staged pages (and has had its RAM since it was first written).
            foreach (var st in _freeStages)
            {
                if (_stageBuffers[st] == 0) continue;
                NativeMemory.Clear((void*)_stageBuffers[st], size);
                bytes += (long)size;
            }
        }
        return bytes;
    }

    /// <summary>The placement staging buffers' addresses (1 chunk each); tests.</summary>
    internal IReadOnlyList<nint> StageBufferAddresses => _stageBuffers;

    /// <summary>Chunks whose placed pages wait in a staging buffer; diagnostics and tests.</summary>
    public int StagedChunks => _stageBuffers.Length - FreeStageCount;

    private int FreeStageCount
    {
        get { lock (_stageLock) return _freeStages.Count; }
    }

    private void FlushOneStage()
    {
        var st = (int)((uint)Interlocked.Increment(ref _stageCursor) % (uint)_stageBuffers.Length);
        var chunk = Volatile.Read(ref _chunkOfStage[st]);
        if (chunk < 0) return;
        Statistics.StreamStageFlush();
        var ring = RentFlushRing();
        var rented = ring is not null;
        try
        {
            lock (ChunkLock(chunk)) FlushStageLocked(chunk, ref ring);
        }
        finally
        {
            if (rented) ReturnFlushRing(ring);
        }
    }

    // Rings for the streams' own flushes, one per stream at a time. A stop-and-copy's retransfers stage scattered pages of
    // hundreds of chunks in swap, so the stream writing a chunk out to free a buffer writes many short runs: in flight
    // together on a ring, not one pwrite after another while the VM is paused.
    private readonly Stack<IoUring> _flushRings = new();
    private readonly Lock _flushRingLock = new();
    private int _flushRingsOut;
    private bool _flushRingsRefused;

    // The most rings the streams' flushes keep: more streams than this at once write with pwrite.
    private const int MaxFlushRings = 8;

    private IoUring? RentFlushRing()
    {
        if (!_options.PlacementWritesOnIoUring || _stageBuffers.Length == 0) return null;
        lock (_flushRingLock)
        {
            if (_flushRingsRefused || _disposed != 0) return null;
            if (_flushRings.Count == 0 && _flushRingsOut >= MaxFlushRings) return null;
            _flushRingsOut++;
            if (_flushRings.TryPop(out var pooled)) return pooled;
        }
        var ring = CreatePlacementRing("the streams' own flushes use pwrite");
        if (ring is null)
        {
            lock (_flushRingLock)
            {
                _flushRingsOut--;
                _flushRingsRefused = true;
            }
        }
        return ring;
    }

    // A ring that failed was disposed by FlushStageLocked (null here, its reason in PlacementRingRefusal): the streams then
    // write with pwrite, as the writer whose ring failed does.
    private void ReturnFlushRing(IoUring? ring)
    {
        lock (_flushRingLock)
        {
            _flushRingsOut--;
            if (ring is null) _flushRingsRefused = true;
            else if (_disposed != 0) ring.Dispose();
            else _flushRings.Push(ring);
        }
    }

    private void DisposeFlushRings()
    {
        lock (_flushRingLock)
        {
            while (_flushRings.TryPop(out var ring)) ring.Dispose();
        }
    }

    // Caller holds the chunk's lock. Returns the staging buffer now holding the page, or -1 (none free: write it directly).
    private int Stage(int chunk, int index, ReadOnlySpan<byte> contents)
    {
        if (_stageBuffers.Length == 0) return -1;
        var st = _stageOfChunk[chunk];
        if (st < 0)
        {
            lock (_stageLock)
            {
                if (!_freeStages.TryPop(out st)) return -1;
            }
            _stageOfChunk[chunk] = st;
            Volatile.Write(ref _chunkOfStage[st], chunk);
        }
        contents.CopyTo(StageSpan(st, index, 1));
        ref var word = ref _stagedBits[st * _stageWords + (index >> 6)];
        var bit = 1UL << (index & 63);
        if ((word & bit) == 0)
        {
            word |= bit;
            _stagedCount[st]++;
        }
        return st;
    }

    private void Unstage(int stage, int index)
    {
        ref var word = ref _stagedBits[stage * _stageWords + (index >> 6)];
        var bit = 1UL << (index & 63);
        if ((word & bit) == 0) return;
        word &= ~bit;
        _stagedCount[stage]--;
    }

    private bool IsStaged(int stage, int index) => (_stagedBits[stage * _stageWords + (index >> 6)] & (1UL << (index & 63))) != 0;

    private static unsafe nint AllocateStage(int pages) => (nint)NativeMemory.AlignedAlloc((nuint)pages * Page.Size, Page.Size);

    private unsafe Span<byte> StageSpan(int stage, int index, int pages) =>
        new((byte*)_stageBuffers[stage] + (long)index * Page.Size, pages * Page.Size);

    // Caller holds the chunk's lock: the staged pages go to their slots in one write per run, and the buffer is free again.
    private void FlushStageLocked(int chunk)
    {
        IoUring? none = null;
        FlushStageLocked(chunk, ref none);
    }

    // With a placement writer's ring, its runs are written from the registered buffer, all in flight at once. A ring that
    // fails is given up (and why is kept in PlacementRingRefusal) and the chunk is written again with pwrite: the buffer
    // is unchanged under the chunk's lock, so the rewrite is the same bytes, and a disk error shows there as well.
    private void FlushStageLocked(int chunk, ref IoUring? ring)
    {
        var st = _stageOfChunk[chunk];
        if (st < 0) return;
        if (_stagedCount[st] > 0)
        {
            var firstSlot = _runs.FirstSlot(_runOfChunk[chunk]);
            var count = PagesIn(chunk);
            if (ring is not null)
            {
                try
                {
                    WriteStagedRuns(st, firstSlot, count, ring);
                }
                catch (IOException e)
                {
                    Volatile.Write(ref _ringRefusal, $"an io_uring placement write failed ({e.Message}); placement writes use pwrite");
                    ring.Dispose();
                    ring = null;
                }
            }
            if (ring is null) WriteStagedRuns(st, firstSlot, count, null);
            Array.Clear(_stagedBits, st * _stageWords, _stageWords);
            _stagedCount[st] = 0;
        }
        _stageOfChunk[chunk] = -1;
        Volatile.Write(ref _chunkOfStage[st], -1);
        lock (_stageLock) _freeStages.Push(st);
    }

    private void WriteStagedRuns(int st, int firstSlot, int count, IoUring? ring)
    {
        var t = System.Diagnostics.Stopwatch.GetTimestamp();
        long pages = 0;
        var i = 0;
        while (i < count)
        {
            if (!IsStaged(st, i)) { i++; continue; }
            var start = i;
            while (i < count && IsStaged(st, i)) i++;
            pages += i - start;
            if (ring is null)
            {
                _swap.WriteRun(firstSlot + start, i - start, StageSpan(st, start, i - start));
                continue;
            }
            if (ring.Prepared == ring.Capacity) ring.SubmitAndWait();
            _swap.PrepareWriteRun(ring, st, firstSlot + start, i - start, StageSpan(st, start, i - start));
        }
        if (ring is { Prepared: > 0 }) ring.SubmitAndWait();
        Statistics.PlacementWritten(pages, t);
        if (ring is not null) Statistics.PlacementRingWritten(pages);
    }

    // Caller holds the chunk's lock; the page is Swapped and its new contents arrived. While the share has room (the hot
    // reserve first copies left), it goes into memory: the bytes are all here, so nothing is read, and a staged older
    // copy is dropped so a later flush cannot write it over what an eviction of this page writes to its slot.
    private bool TryPromoteLocked(int chunk, long page, ReadOnlySpan<byte> contents)
    {
        lock (_placeRoomLock)
        {
            if (_memory.ResidentPages >= SharePages - FreeReservePages) return false;
            if (!_memory.TryInstall(page, PageResidency.Swapped, contents)) return false;
        }
        var stage = _stageOfChunk[chunk];
        if (stage >= 0) Unstage(stage, (int)(page - FirstPage(chunk)));
        return true;
    }

    private void WritePlaced(int slot, ReadOnlySpan<byte> contents)
    {
        var t = System.Diagnostics.Stopwatch.GetTimestamp();
        _swap.Write(slot, contents);
        Statistics.PlacementWritten(1, t);
    }

    private int SlotOf(long page)
    {
        var chunk = ChunkOf(page);
        var run = _runOfChunk[chunk];
        if (run < 0)
            throw new InvalidOperationException($"page {page} is Swapped but its chunk {chunk} has no swap slots: the Swapped state was set outside this private memory.");
        return _runs.FirstSlot(run) + (int)(page - FirstPage(chunk));
    }

    private int CountIn(int chunk, PageResidency residency)
    {
        var first = FirstPage(chunk);
        var count = PagesIn(chunk);
        var n = 0;
        for (var i = 0; i < count; i++)
        {
            if (_memory.GetResidency(first + i) == residency) n++;
        }
        return n;
    }

    private int ChunkOf(long page) => (int)(page / ChunkPages);

    private long FirstPage(int chunk) => (long)chunk * ChunkPages;

    private int PagesIn(int chunk) => (int)Math.Min(ChunkPages, _memory.PageCount - FirstPage(chunk));

    private Lock ChunkLock(int chunk) => _chunkLocks[chunk % _chunkLocks.Length];

    private void CheckPage(long page)
    {
        if ((ulong)page >= (ulong)_memory.PageCount)
            throw new ArgumentOutOfRangeException(nameof(page), page, $"page {page} is outside guest memory of {_memory.PageCount} pages.");
    }

    private struct TouchVisitor(bool[] touched, int[] list, int chunkPages, AtomicPageBitmap forward) : IPageVisitor
    {
        public int Count;

        public void Visit(long page)
        {
            forward.Set(page);
            var c = (int)(page / chunkPages);
            if (touched[c]) return;
            touched[c] = true;
            list[Count++] = c;
        }
    }
}
