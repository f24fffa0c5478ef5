using MigrationFabric.Memory.Tracking;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Swap;
using MigrationFabric.Migration.DataPlane;

namespace MigrationFabric.Migration.PrivateMemory;

/// <summary>Places arriving pages through a destination's private virtual memory: directly into its share or its swap slot, retransfers in place (seed 004's direct memory transfer).</summary>
/// <remarks>In <see cref="PagingMode.Naive"/> the same call behaves as plain OS swap (pages out when full, pages in to apply a retransfer): the naive baseline runs the same code path.</remarks>
/// <param name="memory">The destination's private virtual memory.</param>
/// <param name="emulator">Naive only: the device emulator the host's swap pages out (first) when the arriving VM fills the share; its pages then become the VM's.</param>
public sealed class PrivateMemoryPlacement(PrivateVirtualMemory memory, PagedDeviceEmulator? emulator = null) : IPagePlacement
{
    private const int PrefaultBlockShift = 6;

    private readonly Lock _fill = new();
    private readonly PagePrefault _prefault = new();
    // One bit per 64-page block whose fresh pages were populated (or looked at) already.
    private readonly AtomicPageBitmap _prefaulted = new(((memory?.Memory.PageCount ?? 0) >> PrefaultBlockShift) + 1);
    private long _toMemory, _toSwap;

    /// <summary>The destination's private virtual memory.</summary>
    public PrivateVirtualMemory Memory { get; } = memory ?? throw new ArgumentNullException(nameof(memory));

    /// <summary>Pages (first copies and retransfers) that went to the physical share.</summary>
    public long PlacedInMemory => Volatile.Read(ref _toMemory);

    /// <summary>Pages (first copies and retransfers) that went to the private swap file.</summary>
    public long PlacedInSwap => Volatile.Read(ref _toSwap);

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
        if (target == PlacementTarget.Memory) Interlocked.Increment(ref _toMemory);
        else Interlocked.Increment(ref _toSwap);
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
        if (run > page) _prefault.Populate(guest, page, (int)(run - page));
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
