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
    private readonly Lock _fill = new();
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
        // PlacePage checks for room and installs under the page's chunk lock only, so streams placing first copies
        // into different chunks at once can overshoot share - reserve by a page each, and the page-out thread then
        // evicts a whole chunk mid-migration. First copies that may still go to memory are therefore placed one at a time.
        if (Memory.Mode != PagingMode.Naive && guest.GetResidency(page) is not (PageResidency.Resident or PageResidency.Swapped)
            && guest.ResidentPages < Memory.SharePages - Memory.FreeReservePages)
        {
            lock (_fill) target = Memory.PlacePage(page, contents);
        }
        else target = Memory.PlacePage(page, contents);
        if (target == PlacementTarget.Memory) Interlocked.Increment(ref _toMemory);
        else Interlocked.Increment(ref _toSwap);
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
