using MigrationFabric.Contracts.V1;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Integrity;
using MigrationFabric.Memory.Metrics;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Migration.Codec;

namespace MigrationFabric.Migration.DataPlane;

/// <summary>Where an incoming migration stands at the destination.</summary>
public enum IncomingPhase
{
    /// <summary>Receiving pages; the VM runs at the source.</summary>
    Receiving,

    /// <summary>Resumed here; pages still arriving from the source (post-copy).</summary>
    PostCopy,

    /// <summary>Resumed here with every page in place; waiting for the integrity check.</summary>
    Resumed,

    /// <summary>Verified: the VM is here and its memory equals the source's at switch-over.</summary>
    Completed,

    /// <summary>Failed (see <see cref="IncomingMigration.Completion"/>).</summary>
    Failed,
}

/// <summary>The destination's side of one migration: installs arriving pages into guest memory, takes the switch-over, answers the integrity check.</summary>
/// <remarks>
/// Every page installed is hashed from guest memory right after its one copy (that is the arrival check), and
/// the hash is kept per page: the integrity check compares those with the source's digests at switch-over.
/// Nothing else writes this memory before resume, and after resume only pages still remote arrive, so the
/// table is exactly the memory the VM resumed with.
/// </remarks>
public sealed class IncomingMigration
{
    private readonly ulong[] _digests;
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _allArrived = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _lock = new();
    private long _remaining;
    private long _mismatches;
    private long _pagesApplied;
    private int _activeApplies;
    private int _phase;
    private RemotePageFaultHandler? _faults;
    private FaultChannel.FaultChannelClient? _faultChannel;
    private readonly PagePrefault _prefault = new();

    /// <summary>Prepares to receive VM <paramref name="vm"/> into <paramref name="memory"/> (fresh: every page Zero) whose vCPUs run on <paramref name="mmu"/>.</summary>
    public IncomingMigration(string migrationId, string vm, GuestMemory memory, SoftwareMmu mmu, IncomingMigrationOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(migrationId);
        ArgumentException.ThrowIfNullOrEmpty(vm);
        ArgumentNullException.ThrowIfNull(memory);
        ArgumentNullException.ThrowIfNull(mmu);
        if (mmu.Memory != memory) throw new ArgumentException("the MMU must translate into the destination memory.", nameof(mmu));
        Options = options ?? new();
        Options.Validate();
        MigrationId = migrationId;
        Vm = vm;
        Memory = memory;
        Mmu = mmu;
        _digests = new ulong[memory.PageCount];
    }

    /// <summary>The migration's id.</summary>
    public string MigrationId { get; }

    /// <summary>The VM.</summary>
    public string Vm { get; }

    /// <summary>The destination's guest memory.</summary>
    public GuestMemory Memory { get; }

    /// <summary>The destination's MMU (its fault handler is set for post-copy).</summary>
    public SoftwareMmu Mmu { get; }

    /// <summary>The options.</summary>
    public IncomingMigrationOptions Options { get; }

    /// <summary>Where it stands.</summary>
    public IncomingPhase Phase => (IncomingPhase)Volatile.Read(ref _phase);

    /// <summary>Completes when verified; faults with <see cref="MigrationAbortedException"/>, <see cref="MigrationIntegrityException"/>, <see cref="MigrationSourceLostException"/> or the stream error.</summary>
    public Task Completion => _completion.Task;

    /// <summary>Pages installed from streams and faults.</summary>
    public long PagesApplied => Volatile.Read(ref _pagesApplied);

    /// <summary>Pages still at the source (post-copy).</summary>
    public long PagesRemaining => Volatile.Read(ref _remaining);

    /// <summary>Remote fault latency at this destination (post-copy), nanoseconds.</summary>
    public LatencyHistogram RemoteFaultLatency { get; } = new();

    /// <summary>Remote faults taken.</summary>
    public long RemoteFaults => RemoteFaultLatency.Count;

    /// <summary>Where remote faults' time went, step by step (post-copy).</summary>
    public RemoteFaultSteps RemoteFaultSteps { get; } = new();

    /// <summary>The post-copy fault channel the source opened before switch-over (OpenDataChannel, REMOTE_FAULTS), if any: remote faults use it instead of RemotePages calls.</summary>
    internal FaultChannel.FaultChannelClient? AttachedFaultChannel => Volatile.Read(ref _faultChannel);

    internal bool TryAttachFaultChannel(FaultChannel.FaultChannelClient client) => Interlocked.CompareExchange(ref _faultChannel, client, null) is null;

    /// <summary>Remote faults waiting for the source right now.</summary>
    internal int RemoteFaultsInFlight => Volatile.Read(ref _faultsInFlight);

    private int _faultsInFlight;
    private readonly AsyncSignal _faultsDrained = new();

    internal void FaultStarted() => Interlocked.Increment(ref _faultsInFlight);

    internal void FaultEnded()
    {
        if (Interlocked.Decrement(ref _faultsInFlight) == 0) _faultsDrained.Set();
    }

    /// <summary>Background-push batches wait here while remote faults are out (at most <see cref="IncomingMigrationOptions.FaultPriorityHold"/>): on shared cores, applying a megabyte batch delays the fault's reply.</summary>
    /// <remarks>QEMU's postcopy-preempt gives faults their own channel and sends them ahead of the background stream; holding the
    /// push's apply also stops the source's push through the window, so a fault has the cores to itself.</remarks>
    internal async ValueTask YieldToFaultsAsync(CancellationToken cancellationToken)
    {
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        while (true)
        {
            var next = _faultsDrained.Next;
            if (Volatile.Read(ref _faultsInFlight) == 0) return;
            var left = Options.FaultPriorityHold - System.Diagnostics.Stopwatch.GetElapsedTime(start);
            if (left <= TimeSpan.Zero) return;
            try { await next.WaitAsync(left, cancellationToken).ConfigureAwait(false); }
            catch (TimeoutException) { return; }
        }
    }

    /// <summary>The device state received at switch-over.</summary>
    public ReadOnlyMemory<byte> DeviceState { get; private set; }

    private int _checksum;

    /// <summary>The migration's per-page checksum kind once named (by a stream's open, the switch-over or the integrity check, which must agree); null before.</summary>
    /// <remarks>The arriving checksums are kept as the pages' digests, so the kind is fixed once: a page installed before any was named fixes XXH64.</remarks>
    public PageDigestKind? Checksum => Volatile.Read(ref _checksum) is var k and not 0 ? (PageDigestKind)k : null;

    /// <summary>Fixes the migration's checksum kind to <paramref name="kind"/> if none is yet, or checks that it is that one.</summary>
    /// <exception cref="ArgumentException"><paramref name="namedBy"/> names another kind than the one fixed.</exception>
    internal void UseChecksum(PageDigestKind kind, string namedBy)
    {
        int fixedKind = Interlocked.CompareExchange(ref _checksum, (int)kind, 0);
        if (fixedKind != 0 && fixedKind != (int)kind)
            throw new ArgumentException($"migration {MigrationId}: {namedBy} names checksum {kind}, but the migration's pages carry {(PageDigestKind)fixedKind}.");
    }

    /// <summary>The kind arriving pages are verified and kept in (fixing XXH64 if none was named).</summary>
    internal PageDigestKind ChecksumInUse
    {
        get
        {
            Interlocked.CompareExchange(ref _checksum, (int)PageDigestKind.Xxh64, 0);
            return (PageDigestKind)Volatile.Read(ref _checksum);
        }
    }

    internal bool IsFinished => Phase is IncomingPhase.Completed or IncomingPhase.Failed;

    /// <summary>Installs one received batch; throws <see cref="PageChecksumException"/> or <see cref="PageBatchFormatException"/> on bad input.</summary>
    internal int Apply(PageBatch batch)
    {
        var reader = new PageBatchReader(batch, Memory.PageCount, ChecksumInUse);
        // Counted before the phase check so an abort can wait for appliers already past it.
        Interlocked.Increment(ref _activeApplies);
        try
        {
            bool postCopy = Phase == IncomingPhase.PostCopy;
            if (!postCopy && Phase != IncomingPhase.Receiving)
                throw new InvalidOperationException($"migration {MigrationId} is {Phase}: no more pages are expected.");
            if (Options.Placement is null && !IsPreallocated) PrefaultFreshPages(batch, postCopy ? PageResidency.Remote : PageResidency.Zero);
            int applied = 0;
            while (reader.TryRead(out var entry))
                if (postCopy ? InstallRemote(entry, mustBeResident: false) : InstallPreCopy(entry)) applied++;
            Interlocked.Add(ref _pagesApplied, applied);
            return applied;
        }
        finally
        {
            Interlocked.Decrement(ref _activeApplies);
        }
    }

    /// <summary>Pages put in one preallocation call: large enough that the calls cost nothing next to the kernel's page clears, small enough to stop promptly on cancellation.</summary>
    internal const int PreallocationChunkPages = 2048;

    private int _preallocated;

    /// <summary>Whether <see cref="PreallocateAsync"/> put RAM behind every page: arriving batches then skip their own per-run populate.</summary>
    public bool IsPreallocated => Volatile.Read(ref _preallocated) != 0;

    /// <summary>How long <see cref="PreallocateAsync"/> took (zero until it completes).</summary>
    public TimeSpan Preallocation { get; private set; }

    /// <summary>Puts RAM behind the whole destination memory before the pages arrive (<see cref="GuestMemory.Preallocate"/>, QEMU's -mem-prealloc), on a thread of its own.</summary>
    /// <remarks>
    /// The page stream otherwise pays the kernel's fault and page clear inline, batch by batch; on a host that gets its
    /// memory from a hypervisor of its own that measured 1.8-2.6 CPU s per GB, more than the transfer itself.
    /// Memory placed elsewhere (<see cref="IncomingMigrationOptions.Placement"/>) preallocates what that placement holds by
    /// design (<see cref="IPagePlacement.Preallocate"/>: VMemDirect's fixed share, nothing for plain swap).
    /// </remarks>
    /// <returns>False if the kernel cannot preallocate (pages then fault on first write, as without it) or the placement holds no fixed memory.</returns>
    /// <exception cref="InsufficientMemoryException">The host could not provide the memory; nothing of the VM is affected.</exception>
    public async Task<bool> PreallocateAsync(CancellationToken cancellationToken)
    {
        using var span = Telemetry.MigrationTelemetry.ActivitySource.StartActivity("migration preallocate");
        var placement = Options.Placement;
        span?.SetTag("migration.id", MigrationId).SetTag("vm", Vm).SetTag("bytes", Memory.SizeBytes);
        if (placement is not null) span?.SetTag("placement", placement.GetType().Name);
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        bool done = await Task.Factory.StartNew(() =>
        {
            if (placement is not null) return placement.Preallocate(cancellationToken);
            for (long first = 0; first < Memory.PageCount; first += PreallocationChunkPages)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (!Memory.Preallocate(first, Math.Min(PreallocationChunkPages, Memory.PageCount - first))) return false;
            }
            return true;
        }, cancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default).ConfigureAwait(false);
        Preallocation = System.Diagnostics.Stopwatch.GetElapsedTime(start);
        span?.SetTag("preallocated", done);
        if (done)
        {
            if (placement is null) Volatile.Write(ref _preallocated, 1);
            // Every page has arrived (or none will): what the placement set aside and no page took goes back.
            else _ = Completion.ContinueWith(_ => placement.ReleasePreallocation(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            Telemetry.MigrationTelemetry.Preallocation.Record(Preallocation.TotalMilliseconds);
        }
        return done;
    }

    // Runs of consecutive non-zero pages that were never touched here (Zero before switch-over, Remote after it) are mapped in
    // one call each (see PagePrefault): a remote fault's reply measured ~25 us per page in first-touch traps without it.
    // Populating never changes a page's bytes, so a page another installer wins meanwhile is unaffected.
    internal void PrefaultFreshPages(PageBatch batch, PageResidency fresh)
    {
        var flags = batch.Flags.Span;
        var pages = batch.PageNumbers;
        long runStart = 0;
        int runLength = 0;
        for (int i = 0; i < pages.Count; i++)
        {
            long page = (long)pages[i];
            bool isFresh = (flags[i] & PageFlags.Zero) == 0 && page >= 0 && page < Memory.PageCount && Memory.GetResidency(page) == fresh;
            if (isFresh && runLength > 0 && page == runStart + runLength) { runLength++; continue; }
            if (runLength > 0) _prefault.Populate(Memory, runStart, runLength);
            (runStart, runLength) = (page, isFresh ? 1 : 0);
        }
        if (runLength > 0) _prefault.Populate(Memory, runStart, runLength);
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)] // Hot per-page loop: optimized from its first call, not after tiering (a migration is often the first thing an agent runs for minutes).
    private bool InstallPreCopy(in PageBatchEntry entry)
    {
        long page = entry.Page;
        if (Options.Placement is { } placement)
        {
            Place(placement, entry);
            _digests[page] = entry.Checksum;
            return true;
        }
        var state = Memory.GetResidency(page);
        if (entry.IsZero)
        {
            entry.VerifyZero();
            if (state == PageResidency.Resident) Memory.TryDiscard(page, PageResidency.Zero);
        }
        else if (state == PageResidency.Resident)
        {
            entry.DecodeInto(Memory.GetPageBytes(page));
        }
        else
        {
            var target = Memory.BeginInstall(page, state);
            if (target.IsEmpty) throw new InvalidOperationException($"page {page} is {Memory.GetResidency(page)} at the destination during pre-copy.");
            try { entry.DecodeInto(target); }
            catch { Memory.AbortInstall(page, state); throw; }
            Memory.CompleteInstall(page, state);
        }
        _digests[page] = entry.Checksum;
        return true;
    }

    private void Place(IPagePlacement placement, in PageBatchEntry entry)
    {
        if (entry.IsZero)
        {
            entry.VerifyZero();
            // Never written here: a zero page needs no memory and no swap slot.
            if (Memory.GetResidency(entry.Page) == PageResidency.Zero) return;
            placement.Place(entry.Page, ZeroPage);
            return;
        }
        // A raw page is checked where it was received and copied once, by the placement (into memory or a staging buffer);
        // the integrity check at the end hashes it again where it landed.
        if (entry.TryVerifyRaw(out var raw))
        {
            placement.Place(entry.Page, raw);
            return;
        }
        var inflated = System.Buffers.ArrayPool<byte>.Shared.Rent(Page.Size);
        try
        {
            var contents = inflated.AsSpan(0, Page.Size);
            entry.DecodeInto(contents);
            placement.Place(entry.Page, contents);
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(inflated);
        }
    }

    // What a zero page placed over an older copy holds (never written to).
    private static readonly byte[] ZeroPage = new byte[Page.Size];

    /// <summary>Installs a page that is Remote here; false if it is not Remote any more (a fault or another push won).</summary>
    internal bool InstallRemote(in PageBatchEntry entry, bool mustBeResident)
    {
        long page = entry.Page;
        if (entry.IsZero && !mustBeResident)
        {
            entry.VerifyZero();
            if (!Memory.TryTransition(page, PageResidency.Remote, PageResidency.Zero)) return false;
        }
        else
        {
            var target = Memory.BeginInstall(page, PageResidency.Remote);
            if (target.IsEmpty) return false;
            try { entry.DecodeInto(target); }
            catch { Memory.AbortInstall(page, PageResidency.Remote); throw; }
            Memory.CompleteInstall(page, PageResidency.Remote);
        }
        _digests[page] = entry.Checksum;
        if (Interlocked.Decrement(ref _remaining) == 0) _allArrived.TrySetResult();
        return true;
    }

    internal async Task<SwitchOverResponse> SwitchOverAsync(SwitchOverRequest request, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (Phase != IncomingPhase.Receiving)
                throw new InvalidOperationException($"migration {MigrationId} is {Phase}, not receiving: switch-over happens once.");
        }
        // Post-copy pages are asked for in this kind: it must be the streams' (and the check's).
        UseChecksum(PageChecksums.FromWire(request.Checksum), "the switch-over");
        long pending = 0;
        var bits = request.PendingPages.Span;
        if (bits.Length != 0 && bits.Length != (Memory.PageCount + 7) / 8)
            throw new ArgumentException($"pending_pages has {bits.Length} bytes; a VM of {Memory.PageCount} pages needs {(Memory.PageCount + 7) / 8}.");
        for (long p = 0; p < Memory.PageCount && bits.Length != 0; p++)
        {
            if ((bits[(int)(p >> 3)] & (1 << (int)(p & 7))) == 0) continue;
            var state = Memory.GetResidency(p);
            if (state == PageResidency.Resident)
            {
                Memory.BeginEviction(p, 1);
                Memory.CompleteEviction(p, 1, PageResidency.Remote);
            }
            else if (!Memory.TryTransition(p, state, PageResidency.Remote))
                throw new InvalidOperationException($"page {p} is {state} at the destination and cannot be marked remote.");
            _digests[p] = 0;
            pending++;
        }
        if ((ulong)pending != request.PendingCount)
            throw new ArgumentException($"pending_count says {request.PendingCount} but the bitmap has {pending} pages.");
        if (pending > 0)
        {
            var address = Options.SourceAddressOverride
                ?? (Uri.TryCreate(request.SourceAddress, UriKind.Absolute, out var a) ? a : throw new ArgumentException($"source_address '{request.SourceAddress}' is not an absolute URI; post-copy needs it."));
            _faults = new RemotePageFaultHandler(this, address, (int)Math.Min(request.Prefetch, 256));
            Mmu.FaultHandler = _faults;
        }
        Volatile.Write(ref _remaining, pending);
        if (pending == 0) _allArrived.TrySetResult();
        DeviceState = request.DeviceState.Memory;
        Volatile.Write(ref _phase, (int)(pending > 0 ? IncomingPhase.PostCopy : IncomingPhase.Resumed));
        if (Options.Resume is { } resume)
        {
            try
            {
                await resume(DeviceState, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                // Past the phase change the source's AbortMigration is refused, so this side fails itself (its host then
                // frees the copy); the source gets the error from SwitchOver and rolls back.
                Volatile.Write(ref _phase, (int)IncomingPhase.Failed);
                Discard();
                _completionCancel.Cancel();
                _completion.TrySetException(new MigrationAbortedException(MigrationId, $"the VM could not resume at the destination: {e.Message}"));
                throw;
            }
        }
        _ = WatchForVerifyAsync();
        return new SwitchOverResponse { PendingCount = (ulong)pending };
    }

    private int _verifyRequests;

    // Once every page is here, the source's integrity check is all that is left; a source gone before it or in the middle of
    // it (its streams already closed cleanly, so nothing breaks here) must not leave this side waiting forever.
    private async Task WatchForVerifyAsync()
    {
        try
        {
            await _allArrived.Task.WaitAsync(_completionCancel.Token).ConfigureAwait(false);
            int seen = -1;
            while (true)
            {
                await Task.Delay(Options.VerifyTimeout, _completionCancel.Token).ConfigureAwait(false);
                if (IsFinished) return;
                int now = Volatile.Read(ref _verifyRequests);
                if (now == seen) break;
                seen = now;
                if (now == 0) break;
            }
        }
        catch (Exception) { return; }
        Fail(new TimeoutException($"migration {MigrationId}: every page arrived, but the source's integrity check did not " +
            $"{(Volatile.Read(ref _verifyRequests) == 0 ? "start" : "finish")} within {Options.VerifyTimeout} (IncomingMigrationOptions.VerifyTimeout); the source is presumed lost."));
    }

    internal async Task<VerifyPagesResponse> VerifyAsync(VerifyPagesRequest request, CancellationToken cancellationToken)
    {
        if (Phase is IncomingPhase.Receiving) throw new InvalidOperationException($"migration {MigrationId} has not switched over: nothing to verify yet.");
        Interlocked.Increment(ref _verifyRequests);
        UseChecksum(PageChecksums.FromWire(request.Checksum), "VerifyPages");
        if (request.FirstPage + (ulong)request.Digests.Count > (ulong)Memory.PageCount)
            throw new ArgumentException($"digests for pages [{request.FirstPage}, {request.FirstPage + (ulong)request.Digests.Count}) go beyond the VM's {Memory.PageCount} pages.");
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _completionCancel.Token))
        {
            timeout.CancelAfter(Options.ArrivalTimeout);
            try { await _allArrived.Task.WaitAsync(timeout.Token).ConfigureAwait(false); }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                if (_completion.Task.IsFaulted) throw _completion.Task.Exception!.InnerException!;
                throw new TimeoutException($"migration {MigrationId}: {PagesRemaining} pages still had not arrived after {Options.ArrivalTimeout}.");
            }
        }
        var response = new VerifyPagesResponse();
        long first = (long)request.FirstPage;
        for (int i = 0; i < request.Digests.Count; i++)
        {
            if (_digests[first + i] == request.Digests[i]) continue;
            if (response.MismatchedPages.Count < 1000) response.MismatchedPages.Add((ulong)(first + i));
            response.MismatchedCount++;
        }
        Interlocked.Add(ref _mismatches, (long)response.MismatchedCount);
        if (request.Last)
        {
            response.RemoteFaults = (ulong)RemoteFaults;
            response.FaultLatencyP50Ns = (ulong)RemoteFaultLatency.PercentileNanoseconds(0.5);
            response.FaultLatencyP99Ns = (ulong)RemoteFaultLatency.PercentileNanoseconds(0.99);
            Finish();
        }
        return response;
    }

    private readonly CancellationTokenSource _completionCancel = new();

    private void Finish()
    {
        ReleaseFaultHandler();
        long mismatches = Volatile.Read(ref _mismatches);
        if (mismatches == 0)
        {
            Volatile.Write(ref _phase, (int)IncomingPhase.Completed);
            _completion.TrySetResult();
        }
        else
        {
            Volatile.Write(ref _phase, (int)IncomingPhase.Failed);
            _completion.TrySetException(new MigrationIntegrityException(MigrationId, mismatches, MismatchedPagesSlow()));
        }
    }

    private List<long> MismatchedPagesSlow()
    {
        // Only on failure: the pages are named for the operator (the source has the same list per chunk).
        var pages = new List<long>();
        for (long p = 0; p < _digests.Length && pages.Count < 1000; p++)
            if (_digests[p] != PageDigest.Of(Memory, p, kind: ChecksumInUse)) pages.Add(p);
        return pages;
    }

    /// <summary>Fails the migration before switch-over for <paramref name="reason"/> (the source gave up, its streams broke, the destination could not prepare): drops every page received; false once past the pause.</summary>
    public bool Abort(string reason)
    {
        lock (_lock)
        {
            if (Phase != IncomingPhase.Receiving) return false;
            Volatile.Write(ref _phase, (int)IncomingPhase.Failed);
        }
        SpinWait.SpinUntil(() => Volatile.Read(ref _activeApplies) == 0);
        Discard();
        _completionCancel.Cancel();
        _completion.TrySetException(new MigrationAbortedException(MigrationId, reason));
        return true;
    }

    /// <summary>A stream or fault lost the source: before switch-over that is an abort; during post-copy a known loss.</summary>
    internal void SourceLost(Exception cause)
    {
        if (Phase == IncomingPhase.Receiving) { Abort($"the source's stream broke: {cause.Message}"); return; }
        if (Phase == IncomingPhase.Resumed)
        {
            // Every page is here and the VM runs, but nobody is left to confirm the switch-over state.
            Fail(new IOException($"migration {MigrationId}: the source was lost after switch-over; every page had arrived, but the integrity check could not run.", cause));
            return;
        }
        if (Phase == IncomingPhase.PostCopy && SourceLostInPostCopy is { } elsewhere) { elsewhere(cause); return; }
        PagesLost(cause);
        // Nothing was left to lose (the last pages arrived before or while the source went): the check cannot run either.
        if (Phase == IncomingPhase.PostCopy)
            Fail(new IOException($"migration {MigrationId}: the source was lost after switch-over; every page had arrived, but the integrity check could not run.", cause));
    }

    /// <summary>Set by a destination whose post-copy pages come from other hosts (scatter-gather's intermediates): a lost source goes there instead of failing the migration at once.</summary>
    /// <remarks>When a page holder dies after switch-over the source's run fails too and its streams here break, often first: the holder's own error, which names it, must be the one reported.</remarks>
    internal Action<Exception>? SourceLostInPostCopy { get; set; }

    /// <summary>Pages still remote can no longer arrive (post-copy): the migration fails with <see cref="MigrationSourceLostException"/> counting them.</summary>
    internal void PagesLost(Exception cause)
    {
        if (Phase != IncomingPhase.PostCopy || PagesRemaining == 0) return;
        Volatile.Write(ref _phase, (int)IncomingPhase.Failed);
        ReleaseFaultHandler();
        var lost = new MigrationSourceLostException(MigrationId, PagesRemaining, cause);
        _allArrived.TrySetException(lost);
        _completionCancel.Cancel();
        _completion.TrySetException(lost);
    }

    /// <summary>The data plane found corrupt or malformed input on a stream: the migration cannot be trusted.</summary>
    internal void Fail(Exception cause)
    {
        if (Phase == IncomingPhase.Receiving) { Abort(cause.Message); return; }
        if (IsFinished) return;
        Volatile.Write(ref _phase, (int)IncomingPhase.Failed);
        ReleaseFaultHandler();
        _allArrived.TrySetException(cause);
        _completionCancel.Cancel();
        _completion.TrySetException(cause);
    }

    internal void RecordFault(long startTimestamp) => RemoteFaultLatency.RecordSince(startTimestamp);

    private void ReleaseFaultHandler()
    {
        var faults = Interlocked.Exchange(ref _faults, null);
        if (faults is null) return;
        if (ReferenceEquals(Mmu.FaultHandler, faults) && PagesRemaining == 0) Mmu.FaultHandler = null;
        faults.Dispose();
    }

    private void Discard()
    {
        for (long p = 0; p < Memory.PageCount; p++)
        {
            var state = Memory.GetResidency(p);
            if (state == PageResidency.Resident) Memory.TryDiscard(p, PageResidency.Zero);
            else if (state is PageResidency.Remote) Memory.TryTransition(p, state, PageResidency.Zero);
        }
    }
}
