using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Metrics;
using MigrationFabric.Memory.Tracking;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Swap;
using MigrationFabric.Migration.DataPlane;

namespace MigrationFabric.Migration.PrivateMemory;

/// <summary>Places arriving pages through a destination's private virtual memory: directly into its share or its swap slot, retransfers in place (seed 004's direct memory transfer).</summary>
/// <remarks>In <see cref="PagingMode.Naive"/> the same call behaves as plain OS swap (pages out when full, pages in to apply a retransfer): the naive baseline runs the same code path.</remarks>
/// <param name="memory">The destination's private virtual memory.</param>
/// <param name="emulator">Naive only: the device emulator the host's swap pages out (first) when the arriving VM fills the share; its pages then become the VM's.</param>
public sealed class PrivateMemoryPlacement(PrivateVirtualMemory memory, PagedDeviceEmulator? emulator = null) : IPagePlacement, IDisposable
{
    private const int PrefaultBlockShift = 6;

    private readonly Lock _fill = new();
    private readonly PagePrefault _prefault = new();
    // One bit per 64-page block whose fresh pages were populated (or looked at) already.
    private readonly AtomicPageBitmap _prefaulted = new(((memory?.Memory.PageCount ?? 0) >> PrefaultBlockShift) + 1);
    private long _onShareFrames;
    // Counted on every page by every stream: striped, not shared (see StripedCounters).
    private const int ToMemory = 0, ToSwap = 1;
    private readonly StripedCounters _placed = new(2);
    // VMemDirect's fixed physical share, set aside by Preallocate; first copies bound for memory land on its frames.
    private FramePool? _share;

    /// <summary>The destination's private virtual memory.</summary>
    public PrivateVirtualMemory Memory { get; } = memory ?? throw new ArgumentNullException(nameof(memory));

    /// <summary>Pages (first copies and retransfers) that went to the physical share.</summary>
    public long PlacedInMemory => _placed.Read(ToMemory);

    /// <summary>Pages (first copies and retransfers) that went to the private swap file.</summary>
    public long PlacedInSwap => _placed.Read(ToSwap);

    /// <summary>Pages whose first copy landed on the share's preallocated frames (<see cref="Preallocate"/>) instead of RAM the kernel found as it arrived.</summary>
    public long PlacedOnShareFrames => Volatile.Read(ref _onShareFrames);

    /// <summary>Pages of RAM <see cref="Preallocate"/> set aside for the share (0 before it, or when it set none aside).</summary>
    public long ShareFramesPreallocated { get; private set; }

    /// <summary>Frames <see cref="Preallocate"/> set aside that no first copy has taken and that are not given back yet.</summary>
    public long ShareFramesLeft
    {
        get { lock (_fill) return _share?.FreePages ?? 0; }
    }

    /// <summary>Why the share's frames stopped being used before they ran out (the kernel refused to move them), else null.</summary>
    public string? ShareFramesRefusal => Volatile.Read(ref _share)?.Refusal;

    /// <summary>VMemDirect: sets aside the share's RAM before the pages arrive (seed 004: private virtual memory is assigned a fixed amount of physical memory), as a destination holding the whole VM preallocates all of it.</summary>
    /// <remarks>
    /// Frames for as many pages as first copies may put in memory (the share less its free and hot reserves, less what
    /// is resident already), populated now on the calling thread; placing a first copy then moves frames under its
    /// block (<see cref="GuestMemory.AdoptFrames"/>) instead of the kernel clearing fresh pages on the page stream.
    /// Frames left when the migration ends are given back by <see cref="ReleasePreallocation"/>, which the incoming migration
    /// that preallocated calls when it ends.
    /// </remarks>
    /// <returns>False in <see cref="PagingMode.Naive"/> (plain OS swap holds no fixed share), when nothing may go to memory, or where the kernel cannot populate.</returns>
    public bool Preallocate(CancellationToken cancellationToken)
    {
        var guest = Memory.Memory;
        long pages = Memory.SharePages - Memory.FreeReservePages - Memory.HotReservePages - guest.ResidentPages;
        if (Memory.Mode == PagingMode.Naive || pages <= 0) return false;
        var pool = new FramePool(pages);
        try
        {
            if (!pool.Populate(cancellationToken))
            {
                pool.Dispose();
                return false;
            }
        }
        catch
        {
            pool.Dispose();
            throw;
        }
        lock (_fill)
        {
            _share?.Dispose();
            _share = pool;
            ShareFramesPreallocated = pages;
        }
        return true;
    }

    /// <summary>Gives back the share's preallocated frames no first copy took (every page has arrived, or the migration ended).</summary>
    public void ReleasePreallocation()
    {
        lock (_fill)
        {
            _share?.Dispose();
        }
    }

    /// <summary>Gives back the share's unused frames.</summary>
    public void Dispose() => ReleasePreallocation();

    /// <inheritdoc/>
    public void Place(long page, ReadOnlySpan<byte> contents)
    {
        PlacementTarget target;
        var guest = Memory.Memory;
        if (emulator is { IsPagedOut: false } && guest.ResidentPages >= Memory.SharePages) EmulatorMakesRoom();
        // First copies that may still go to memory are placed one at a time (with their block's prefault): before PlacePage
        // had its own room lock, streams placing into different chunks at once overshot share - reserve by a page each.
        var fresh = guest.GetResidency(page) == PageResidency.Zero;
        if (Memory.Mode != PagingMode.Naive && fresh && guest.ResidentPages < Memory.SharePages - Memory.FreeReservePages - Memory.HotReservePages)
        {
            lock (_fill)
            {
                Prefault(page, Memory.SharePages - Memory.FreeReservePages - Memory.HotReservePages - guest.ResidentPages);
                target = Memory.PlacePage(page, contents);
            }
        }
        else
        {
            if (fresh && Memory.Mode == PagingMode.Naive) Prefault(page, Memory.SharePages);
            target = Memory.PlacePage(page, contents);
        }
        _placed.Increment(target == PlacementTarget.Memory ? ToMemory : ToSwap);
    }

    // A first copy bound for memory: map the fresh pages from it to its 64-page block's end (at most `room`) in one
    // madvise, as the ideal destination's receive path does, instead of one first-touch fault per page (a stream's
    // batch is a run of consecutive pages, so the rest of the block is what it places next). Populating never changes
    // a page's bytes or residency.
    private void Prefault(long page, long room)
    {
        var block = page >> PrefaultBlockShift;
        if (room <= 0 || !_prefaulted.Set(block)) return;
        var guest = Memory.Memory;
        var end = Math.Min(Math.Min((block + 1) << PrefaultBlockShift, guest.PageCount), page + room);
        var run = page;
        while (run < end && guest.GetResidency(run) == PageResidency.Zero) run++;
        if (run == page) return;
        // Caller holds _fill, as does every use of _share.
        if (_share is { } frames && guest.AdoptFrames(frames, page, (int)(run - page))) _onShareFrames += run - page;
        else _prefault.Populate(guest, page, (int)(run - page));
    }

    // The host's LRU: the emulator, idle since the migration began, is colder than any VM page that arrived.
    private void EmulatorMakesRoom()
    {
        lock (_fill)
        {
            if (emulator is not { IsPagedOut: false } e) return;
            e.PageOut();
            Memory.SetSharePages(Math.Min(Memory.Memory.PageCount, Memory.SharePages + e.Pages));
        }
    }
}
