using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using MigrationFabric.Memory.Metrics;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Tracking;

namespace MigrationFabric.Memory.Guest;

/// <summary>A VM's guest-physical memory: real bytes in 4 KiB pages, each page's residency, and its dirty and access logs.</summary>
/// <remarks>
/// Bytes live in an anonymous mapping (page p at offset p * 4096); a page that is not Resident holds no RAM
/// and reads as zeroes here. Residency changes only through the methods below, which keep
/// <see cref="ResidentPages"/> exact and never let a page's RAM go while a vCPU is inside it:
/// <list type="bullet">
/// <item>Zero/Ballooned -> Resident: a vCPU's first write (in the MMU), or <see cref="TryInstall"/>.</item>
/// <item>Swapped/Remote/Zero -> Resident: an installer (<see cref="BeginInstall"/> + <see cref="CompleteInstall"/>), typically a fault handler.</item>
/// <item>Resident -> Swapped/Remote/Ballooned/Zero: <see cref="BeginEviction"/> (waits until no vCPU is inside), read the bytes out, then <see cref="CompleteEviction"/> (drops the RAM) or <see cref="CancelEviction"/>.</item>
/// <item>Between non-resident states: <see cref="TryTransition"/>.</item>
/// </list>
/// </remarks>
public sealed unsafe class GuestMemory : IDisposable
{
    private readonly NativeMapping _mapping;
    private readonly byte[] _residency;
    // Striped: every page transition moves two counts, and streams placing pages on different cores all moving one
    // cache line's counts cost ~90 ns a page in a profile of a migration's destination.
    private readonly StripedCounters _stateCounts = new((int)PageResidency.Installing + 1);
    private long _residentPages;
    private IResidencyObserver? _observer;
    private long _budget;
    private readonly Lock _harvestLock = new();
    private AtomicPageBitmap? _harvestScratch;

    /// <summary>Maps <see cref="GuestMemoryOptions.SizeBytes"/> of zeroed guest memory, every page Zero.</summary>
    public GuestMemory(GuestMemoryOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        SizeBytes = options.SizeBytes;
        PageCount = SizeBytes >> Page.Shift;
        _mapping = new NativeMapping(SizeBytes, options.TransparentHugePages);
        _residency = new byte[PageCount];
        _stateCounts.Add((int)PageResidency.Zero, PageCount);
        _budget = options.ResidentBudgetPages ?? PageCount;
        Dirty = new DirtyBitmap(PageCount);
        Accessed = new AccessBitmap(PageCount);
    }

    /// <summary>Maps <paramref name="sizeBytes"/> of guest memory with default options otherwise.</summary>
    public GuestMemory(long sizeBytes) : this(new GuestMemoryOptions { SizeBytes = sizeBytes }) { }

    /// <summary>Bytes of guest-physical memory.</summary>
    public long SizeBytes { get; }

    /// <summary>Pages of guest-physical memory.</summary>
    public long PageCount { get; }

    /// <summary>Written pages since the last harvest (set by the MMU on every write).</summary>
    public DirtyBitmap Dirty { get; }

    /// <summary>Touched pages since the last sample (set by the MMU on every read or write).</summary>
    public AccessBitmap Accessed { get; }

    /// <summary>Takes and clears the dirty log for a pre-copy round while vCPUs run; visits every taken page after the stores that dirtied it are visible.</summary>
    /// <remarks>
    /// Use this rather than <c>Dirty.FetchAndClear</c> while vCPUs run. A vCPU sets a page's dirty bit after its
    /// store and skips the locked instruction when the bit is already set, so its store may still sit in its
    /// CPU's store buffer when the bit is taken. Taking the whole log first, then one process-wide memory
    /// barrier, then visiting, guarantees that a page read in the visitor (or later) shows every store whose bit
    /// this harvest took; later stores set the bit again for the next round. Harvests are serialized.
    /// </remarks>
    /// <returns>Pages taken.</returns>
    public long HarvestDirty<TVisitor>(ref TVisitor visitor) where TVisitor : struct, IPageVisitor
    {
        lock (_harvestLock)
        {
            var taken = _harvestScratch ??= new AtomicPageBitmap(PageCount);
            long n = Dirty.FetchAndClearInto(taken);
            if (n == 0) return 0;
            Interlocked.MemoryBarrierProcessWide();
            taken.FetchAndClear(ref visitor);
            return n;
        }
    }

    /// <summary>Pages holding RAM right now (Resident or Evicting): the VM's real footprint.</summary>
    public long ResidentPages => Volatile.Read(ref _residentPages);

    /// <summary>The VM's physical share in pages; pagers page out above it.</summary>
    public long ResidentBudgetPages
    {
        get => Volatile.Read(ref _budget);
        set
        {
            if (value <= 0 || value > PageCount)
                throw new ArgumentOutOfRangeException(nameof(value), value, $"resident budget must be within 1..{PageCount} pages.");
            Volatile.Write(ref _budget, value);
        }
    }

    /// <summary>Whether more pages are resident than the budget allows.</summary>
    public bool IsOverBudget => ResidentPages > ResidentBudgetPages;

    internal VcpuHazards Hazards { get; } = new();

    internal byte* Base => _mapping.Base;

    /// <summary>Sets the single observer told about pages becoming resident (null removes it).</summary>
    public void SetResidencyObserver(IResidencyObserver? observer) => Volatile.Write(ref _observer, observer);

    /// <summary>The page's residency now.</summary>
    public PageResidency GetResidency(PageNumber page)
    {
        CheckPage(page);
        return (PageResidency)Volatile.Read(ref _residency[page.Value]);
    }

    /// <summary>Pages in residency <paramref name="residency"/> now (kept up to date on every transition, O(1)).</summary>
    public long CountOf(PageResidency residency) => _stateCounts.Read((int)residency);

    /// <summary>Counts pages in each residency by scanning (racy while vCPUs run). Index the result by (int)PageResidency.</summary>
    public long[] CountByResidency()
    {
        var counts = new long[(int)PageResidency.Installing + 1];
        foreach (var r in _residency) counts[r]++;
        return counts;
    }

    /// <summary>The host's view of a page's bytes: no residency check, no dirty or access bit.</summary>
    /// <remarks>For installers, evictors, migration and digests. Writing a Resident page here while vCPUs run bypasses dirty tracking.</remarks>
    public Span<byte> GetPageBytes(PageNumber page)
    {
        CheckPage(page);
        return new Span<byte>(_mapping.Base + (page.Value << Page.Shift), Page.Size);
    }

    /// <summary>Puts RAM behind pages [first, first + count) ahead of their first write, without changing their bytes or residency (a destination's reservation, as QEMU's -mem-prealloc).</summary>
    /// <remarks>
    /// Copying into never-touched memory costs the kernel a fault and a page clear per 4 KiB; on a host whose own
    /// hypervisor reclaims free memory that clear measured 1-3 CPU s per GiB, paid inline on the page stream.
    /// Paying it once, in large calls, before the pages arrive takes it off the transfer. The RAM then counts in the
    /// process's RSS while <see cref="ResidentPages"/> still counts only pages that hold data; discarding a page
    /// (eviction, zero-page discard) gives its RAM back as usual.
    /// </remarks>
    /// <returns>False where the kernel cannot (before Linux 5.14, or not Linux): nothing was done and pages fault on first write.</returns>
    /// <exception cref="InsufficientMemoryException">The kernel could not provide the RAM (ENOMEM).</exception>
    /// <exception cref="InvalidOperationException">Any other refusal, with its errno.</exception>
    public bool Preallocate(PageNumber first, long count)
    {
        CheckRange(first, count);
        return count == 0 || _mapping.Populate(first.Value << Page.Shift, count << Page.Shift);
    }

    /// <summary>Moves <paramref name="count"/> frames from <paramref name="pool"/> under the Zero pages [first, first + count), so their first writes find RAM set aside before (a fixed share reserved ahead of its pages); bytes and residency do not change.</summary>
    /// <remarks>
    /// The pool's frames are zeroed RAM, and a Zero page reads as zeroes, so swapping the one for the other is invisible
    /// to readers. Installers are kept out while the mapping changes: every page is claimed (Zero -> Installing) first and
    /// given back after, so a concurrent install either lands before (the page is not Zero: nothing is moved) or waits.
    /// </remarks>
    /// <returns>True if the frames moved; false, with nothing changed, if a page in the range was not Zero, the pool has fewer frames left, or the kernel refused (<see cref="FramePool.Refusal"/>).</returns>
    public bool AdoptFrames(FramePool pool, PageNumber first, int count)
    {
        ArgumentNullException.ThrowIfNull(pool);
        CheckRange(first, count);
        if (count == 0 || pool.FreePages < count) return false;
        long end = first.Value + count, claimed = first.Value;
        while (claimed < end && Cas(claimed, PageResidency.Zero, PageResidency.Installing)) claimed++;
        try
        {
            return claimed == end && pool.TryMoveTo((nint)(_mapping.Base + (first.Value << Page.Shift)), count);
        }
        finally
        {
            for (long p = first.Value; p < claimed; p++)
                if (!Cas(p, PageResidency.Installing, PageResidency.Zero))
                    throw new InvalidOperationException($"page {p} left Installing while frames were moved under it.");
        }
    }

    /// <summary>Moves a chunk's parked frames from <paramref name="recycler"/> under pages [first, first + count), which the caller has claimed for installing (<see cref="BeginInstall"/>) and will overwrite whole, so the fill finds RAM there instead of the kernel clearing fresh pages.</summary>
    /// <returns>True if the frames moved; false, with nothing changed, if <paramref name="count"/> is not the recycler's slot size, a page is not Installing, no slot is full, or the kernel refused (<see cref="FrameRecycler.Refusal"/>).</returns>
    /// <remarks>Parked frames hold an evicted chunk's old bytes until the caller's fill overwrites them; no one else reads or writes an Installing page meanwhile.</remarks>
    public bool AdoptRecycledFrames(FrameRecycler recycler, PageNumber first, int count)
    {
        ArgumentNullException.ThrowIfNull(recycler);
        CheckRange(first, count);
        if (count != recycler.SlotPages) return false;
        for (long p = first.Value; p < first.Value + count; p++)
            if (Volatile.Read(ref _residency[p]) != (byte)PageResidency.Installing) return false;
        return recycler.TryUnpark((nint)(_mapping.Base + (first.Value << Page.Shift)));
    }

    /// <summary>The host's view of pages [first, first + count) as one span (at most 2 GiB - 1 page).</summary>
    public Span<byte> GetRangeBytes(PageNumber first, int count)
    {
        CheckRange(first, count);
        if ((long)count * Page.Size > int.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(count), count, "a single span covers at most 524287 pages.");
        return new Span<byte>(_mapping.Base + (first.Value << Page.Shift), count * Page.Size);
    }

    /// <summary>Moves a page between two states neither of which holds RAM (e.g. Zero -> Remote on a fresh destination, Swapped -> Remote).</summary>
    /// <returns>False if the page was not in <paramref name="from"/>.</returns>
    public bool TryTransition(PageNumber page, PageResidency from, PageResidency to)
    {
        CheckPage(page);
        if (!IsParked(from) || !IsParked(to))
            throw new ArgumentException(
                $"TryTransition only moves between Zero, Swapped, Remote and Ballooned ({from} -> {to} requested); use the install or eviction methods for Resident.");
        if (from == to) return GetResidency(page) == from;
        // Every non-resident state already holds no RAM and reads as zeroes (eviction and aborted installs
        // discard), so moving between them touches no bytes.
        return Cas(page, from, to);
    }

    /// <summary><see cref="TryTransition"/> over pages [first, first + count); returns how many were in <paramref name="from"/> and moved.</summary>
    public long TryTransitionRange(PageNumber first, long count, PageResidency from, PageResidency to)
    {
        CheckRange(first, count);
        long moved = 0;
        for (long p = first; p < first + count; p++)
            if (TryTransition(p, from, to)) moved++;
        return moved;
    }

    /// <summary>Claims a non-resident page for filling: <paramref name="from"/> -> Installing. Exactly one caller wins.</summary>
    /// <returns>The page's bytes to fill, or an empty span if the page was not in <paramref name="from"/>.</returns>
    public Span<byte> BeginInstall(PageNumber page, PageResidency from)
    {
        CheckPage(page);
        if (!IsParked(from))
            throw new ArgumentException($"only a non-resident page can be installed, not one that is {from}.", nameof(from));
        if (!Cas(page, from, PageResidency.Installing)) return default;
        return new Span<byte>(_mapping.Base + (page.Value << Page.Shift), Page.Size);
    }

    /// <summary>Finishes <see cref="BeginInstall"/>: Installing -> Resident.</summary>
    public void CompleteInstall(PageNumber page, PageResidency from)
    {
        CheckPage(page);
        if (!Cas(page, PageResidency.Installing, PageResidency.Resident))
            throw new InvalidOperationException($"{page} is {GetResidency(page)}, not Installing: CompleteInstall without BeginInstall.");
        BecameResident(page, from);
    }

    /// <summary>Gives up a claim from <see cref="BeginInstall"/>: Installing -> <paramref name="backTo"/> (its bytes are dropped).</summary>
    public void AbortInstall(PageNumber page, PageResidency backTo)
    {
        CheckPage(page);
        if (!IsParked(backTo)) throw new ArgumentException($"an aborted install returns to a non-resident state, not {backTo}.", nameof(backTo));
        _mapping.Discard(page.Value << Page.Shift, Page.Size);
        if (!Cas(page, PageResidency.Installing, backTo))
            throw new InvalidOperationException($"{page} is {GetResidency(page)}, not Installing: AbortInstall without BeginInstall.");
    }

    /// <summary>Copies <paramref name="contents"/> into a page that is in <paramref name="from"/> and makes it Resident, atomically against other installers.</summary>
    /// <returns>False (nothing written) if the page was not in <paramref name="from"/>.</returns>
    public bool TryInstall(PageNumber page, PageResidency from, ReadOnlySpan<byte> contents)
    {
        if (contents.Length != Page.Size)
            throw new ArgumentException($"page contents must be exactly {Page.Size} bytes, were {contents.Length}.", nameof(contents));
        var dest = BeginInstall(page, from);
        if (dest.IsEmpty) return false;
        contents.CopyTo(dest);
        CompleteInstall(page, from);
        return true;
    }

    /// <summary>Starts evicting the Resident pages in [first, first + count): Resident -> Evicting, then waits until no vCPU is inside any of them.</summary>
    /// <returns>How many pages this call moved to Evicting (the caller owns exactly those: check with <see cref="GetResidency"/>).</returns>
    /// <remarks>While Evicting, the bytes stay readable through <see cref="GetPageBytes"/> and vCPUs touching the page wait.</remarks>
    public int BeginEviction(PageNumber first, int count)
    {
        CheckRange(first, count);
        int moved = 0;
        for (long p = first; p < first + count; p++)
            if (Cas(p, PageResidency.Resident, PageResidency.Evicting)) moved++;
        if (moved > 0) Hazards.WaitUntilOutside(first, count);
        return moved;
    }

    /// <summary>Finishes eviction of every Evicting page in [first, first + count): drops its RAM, then Evicting -> <paramref name="target"/>.</summary>
    /// <returns>Pages evicted.</returns>
    public int CompleteEviction(PageNumber first, int count, PageResidency target) => CompleteEviction(first, count, target, null);

    /// <summary><see cref="CompleteEviction(PageNumber, int, PageResidency)"/>, parking the frames of a run that covers all of [first, first + count) in <paramref name="recycler"/> (when its slots are that size) instead of giving them back to the kernel.</summary>
    /// <returns>Pages evicted.</returns>
    public int CompleteEviction(PageNumber first, int count, PageResidency target, FrameRecycler? recycler)
    {
        CheckRange(first, count);
        if (!IsParked(target))
            throw new ArgumentException($"eviction goes to Zero, Swapped, Remote or Ballooned, not {target}.", nameof(target));
        int done = 0;
        long end = first + count;
        long p = first;
        while (p < end)
        {
            if (Volatile.Read(ref _residency[p]) != (byte)PageResidency.Evicting) { p++; continue; }
            long runStart = p;
            while (p < end && Volatile.Read(ref _residency[p]) == (byte)PageResidency.Evicting) p++;
            // Drop RAM before publishing the new state: a fault handler may install the page the moment it is published.
            // A whole range's frames may be parked for the next page-in instead; the range reads as zeroes either way.
            bool parked = recycler is not null && runStart == first.Value && p - runStart == count && count == recycler.SlotPages
                && recycler.TryPark((nint)(_mapping.Base + (runStart << Page.Shift)));
            if (!parked) _mapping.Discard(runStart << Page.Shift, (p - runStart) << Page.Shift);
            for (long q = runStart; q < p; q++)
            {
                if (!Cas(q, PageResidency.Evicting, target))
                    throw new InvalidOperationException($"page {q} left Evicting while its eviction was completing.");
                Interlocked.Decrement(ref _residentPages);
                done++;
            }
        }
        return done;
    }

    /// <summary>Abandons eviction of every Evicting page in [first, first + count): Evicting -> Resident, contents untouched.</summary>
    public int CancelEviction(PageNumber first, int count)
    {
        CheckRange(first, count);
        int n = 0;
        for (long p = first; p < first + count; p++)
            if (Cas(p, PageResidency.Evicting, PageResidency.Resident)) n++;
        return n;
    }

    /// <summary>Evicts one page start to finish with nothing to read out (its contents are not needed: freed, ballooned, or owned elsewhere).</summary>
    /// <returns>False if the page was not Resident.</returns>
    public bool TryDiscard(PageNumber page, PageResidency target)
    {
        if (BeginEviction(page, 1) == 0) return false;
        CompleteEviction(page, 1, target);
        return true;
    }

    /// <summary>Makes a Zero or Ballooned page Resident in place (its contents are zeroes already); used by the MMU on a first touch.</summary>
    internal bool TryTouchZero(long page, PageResidency from)
    {
        if (!Cas(page, from, PageResidency.Resident)) return false;
        BecameResident(page, from);
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal byte ResidencyByte(long page)
        => Volatile.Read(ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_residency), (nint)page));

    /// <summary>Unmaps the guest memory; every span handed out before is invalid afterwards.</summary>
    public void Dispose() => _mapping.Dispose();

    internal void CheckPage(long page)
    {
        if ((ulong)page >= (ulong)PageCount)
            throw new ArgumentOutOfRangeException(nameof(page), page, $"page {page} is outside guest memory of {PageCount} pages ({SizeBytes} bytes).");
    }

    internal void CheckRange(long first, long count)
    {
        if (first < 0 || count < 0 || first > PageCount - count)
            throw new ArgumentOutOfRangeException(nameof(count), $"pages [{first}, {first + count}) are outside guest memory of {PageCount} pages.");
    }

    private void BecameResident(long page, PageResidency from)
    {
        Interlocked.Increment(ref _residentPages);
        Volatile.Read(ref _observer)?.OnResident(page, from);
    }

    private bool Cas(long page, PageResidency from, PageResidency to)
    {
        if (Interlocked.CompareExchange(ref _residency[page], (byte)to, (byte)from) != (byte)from) return false;
        _stateCounts.Move((int)from, (int)to);
        return true;
    }

    private static bool IsParked(PageResidency r)
        => r is PageResidency.Zero or PageResidency.Swapped or PageResidency.Remote or PageResidency.Ballooned;
}
