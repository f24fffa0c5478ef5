using System.Runtime.InteropServices;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Swap;
using MigrationFabric.Migration.PrivateMemory;

namespace MigrationFabric.Migration.Tests.PrivateMemory;

/// <summary>Direct placement's receive path: fresh pages bound for memory are mapped per block, never beyond the share's room.</summary>
public partial class PrivateMemoryPlacementTests
{
    private const long Pages = 1024;

    [Fact]
    public async Task A_first_copy_bound_for_memory_maps_the_rest_of_its_block_up_to_the_room_without_changing_residency()
    {
        using var memory = new GuestMemory(Pages * Page.Size);
        // Share 256 pages, reserve one 256-page chunk... so the reserve is share/2 = 128: room for 128 pages in memory.
        await using var pvm = new PrivateVirtualMemory(memory, new PrivateVirtualMemoryOptions { SharePages = 256, ScanAccessBitsPeriodically = false });
        var placement = new PrivateMemoryPlacement(pvm);
        var page = new byte[Page.Size];
        page.AsSpan().Fill(7);

        placement.Place(0, page);
        Assert.Equal(PageResidency.Resident, memory.GetResidency(0));
        Assert.Equal(PageResidency.Zero, memory.GetResidency(1));
        Assert.True(Mapped(memory, 1, 63), "the rest of page 0's 64-page block was populated");
        Assert.False(Mapped(memory, 64, 1), "the next block waits for its own first page");
        var zeros = new byte[Page.Size];
        Assert.Equal(PageResidency.Zero, pvm.ReadPage(5, zeros));
        Assert.All(zeros, b => Assert.Equal(0, b));

        // Fill up to 120 resident: the block of page 120 may only be mapped up to the room left (128 - 120 = 8 pages).
        for (long p = 1; p < 120; p++) placement.Place(p, page);
        placement.Place(120, page);
        Assert.True(Mapped(memory, 121, 7), "mapped up to the room");
        Assert.False(Mapped(memory, 128, 1), "not beyond the room: those pages go to swap");
        for (long p = 121; p < Pages; p++) placement.Place(p, page);
        Assert.Equal(128, memory.ResidentPages);
        Assert.Equal(Pages - 128, placement.PlacedInSwap);
    }

    // Whether every page of [first, first + count) is in RAM (mincore).
    private static unsafe bool Mapped(GuestMemory memory, long first, int count)
    {
        var vec = new byte[count];
        fixed (byte* start = memory.GetPageBytes(first))
        fixed (byte* v = vec)
        {
            if (Mincore((nint)start, (nuint)count * Page.Size, v) != 0) throw new InvalidOperationException($"mincore failed: errno {Marshal.GetLastPInvokeError()}");
        }
        return Array.TrueForAll(vec, b => (b & 1) != 0);
    }

    [LibraryImport("libc", EntryPoint = "mincore", SetLastError = true)]
    private static unsafe partial int Mincore(nint addr, nuint length, byte* vec);
}
