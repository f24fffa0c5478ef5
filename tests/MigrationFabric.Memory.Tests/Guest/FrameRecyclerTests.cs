using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Pages;
using Xunit;

namespace MigrationFabric.Memory.Tests.Guest;

/// <summary>FrameRecycler with GuestMemory: a whole evicted chunk's frames parked, then moved under a chunk claimed for a page-in; everything else discards as before.</summary>
public class FrameRecyclerTests
{
    private const long Size = 16L << 20;
    private const int Chunk = 256;

    private static void Install(GuestMemory m, long first, int count, byte value)
    {
        var page = new byte[Page.Size];
        page.AsSpan().Fill(value);
        for (long p = first; p < first + count; p++) Assert.True(m.TryInstall(p, PageResidency.Zero, page));
    }

    private static void Evict(GuestMemory m, long first, int count, FrameRecycler recycler)
    {
        Assert.Equal(count, m.BeginEviction(first, count));
        Assert.Equal(count, m.CompleteEviction(first, count, PageResidency.Swapped, recycler));
    }

    [Fact]
    public unsafe void A_whole_evicted_chunk_parks_its_frames_and_a_chunk_claimed_for_page_in_adopts_them()
    {
        if (!OperatingSystem.IsLinux()) return;
        using var m = new GuestMemory(Size);
        using var recycler = new FrameRecycler(2, Chunk);
        Install(m, 0, Chunk, 7);

        Evict(m, 0, Chunk, recycler);

        // The frames left the chunk (it reads zero and holds no RAM), and wait in a slot.
        Assert.Equal(1, recycler.FullSlots);
        Assert.Equal(0, NativeMappingTests.ResidentPagesOf((nint)m.Base, Chunk));
        Assert.True(m.GetRangeBytes(0, Chunk).IndexOfAnyExcept((byte)0) < 0);
        Assert.Equal(0, m.ResidentPages);

        var at = 3L * Chunk;
        Assert.True(m.TryTransitionRange(at, Chunk, PageResidency.Zero, PageResidency.Swapped) == Chunk);
        for (long p = at; p < at + Chunk; p++) Assert.False(m.BeginInstall(p, PageResidency.Swapped).IsEmpty);
        Assert.True(m.AdoptRecycledFrames(recycler, at, Chunk));

        // RAM is there before the fill, holding the evicted chunk's old bytes until the fill overwrites them.
        Assert.Equal(Chunk, NativeMappingTests.ResidentPagesOf((nint)m.Base + (nint)(at * Page.Size), Chunk));
        Assert.Equal(7, m.GetPageBytes(at)[0]);
        m.GetRangeBytes(at, Chunk).Fill(9);
        for (long p = at; p < at + Chunk; p++) m.CompleteInstall(p, PageResidency.Swapped);
        Assert.True(m.GetRangeBytes(at, Chunk).IndexOfAnyExcept((byte)9) < 0);
        Assert.Equal((0, 1L, 1L), (recycler.FullSlots, recycler.Parked, recycler.Adopted));
        Assert.Null(recycler.Refusal);
    }

    [Fact]
    public void A_range_not_claimed_whole_or_of_another_size_adopts_nothing_and_partial_or_overflowing_evictions_discard()
    {
        using var m = new GuestMemory(Size);
        using var recycler = new FrameRecycler(1, Chunk);
        Install(m, 0, Chunk, 7);
        Install(m, Chunk, Chunk, 8);
        Install(m, 2 * Chunk, Chunk, 9);

        // Only part of a chunk evicted: discarded, nothing parked.
        Assert.True(m.TryDiscard(Chunk + 5, PageResidency.Zero));
        Evict(m, Chunk, 5, recycler);
        Assert.Equal(0, recycler.FullSlots);
        Evict(m, 0, Chunk, recycler);
        Assert.Equal(OperatingSystem.IsLinux() ? 1 : 0, recycler.FullSlots);
        // Every slot full: the next whole chunk is discarded, and reads zero all the same.
        Evict(m, 2 * Chunk, Chunk, recycler);
        Assert.True(m.GetRangeBytes(2 * Chunk, Chunk).IndexOfAnyExcept((byte)0) < 0);
        Assert.Equal(OperatingSystem.IsLinux() ? 1 : 0, recycler.FullSlots);

        // A page not claimed (still Swapped) or a range of another size: the parked frames stay parked.
        var at = 8L * Chunk;
        Assert.Equal(Chunk, m.TryTransitionRange(at, Chunk, PageResidency.Zero, PageResidency.Swapped));
        for (long p = at; p < at + Chunk - 1; p++) Assert.False(m.BeginInstall(p, PageResidency.Swapped).IsEmpty);
        Assert.False(m.AdoptRecycledFrames(recycler, at, Chunk));
        Assert.False(m.AdoptRecycledFrames(recycler, at, Chunk - 1));
        Assert.Equal(OperatingSystem.IsLinux() ? 1 : 0, recycler.FullSlots);
        Assert.Equal(0, recycler.Adopted);
    }

    [Fact]
    public void A_move_the_kernel_refuses_is_reported_and_nothing_moves_after_it()
    {
        if (!OperatingSystem.IsLinux()) return;
        using var m = new GuestMemory(Size);
        using var recycler = new FrameRecycler(2, Chunk);
        Assert.False(recycler.TryPark(1));
        Assert.Contains("errno 22", recycler.Refusal);
        Install(m, 0, Chunk, 7);
        Evict(m, 0, Chunk, recycler);
        Assert.Equal(0, recycler.FullSlots);
        Assert.True(m.GetRangeBytes(0, Chunk).IndexOfAnyExcept((byte)0) < 0);
        Assert.Throws<ArgumentOutOfRangeException>(() => new FrameRecycler(0, Chunk));
    }

    [Fact]
    public void Frames_parked_when_the_recycler_is_disposed_are_freed_and_the_guest_is_untouched()
    {
        using var m = new GuestMemory(Size);
        var recycler = new FrameRecycler(2, Chunk);
        Install(m, 0, Chunk, 7);
        Install(m, Chunk, Chunk, 8);
        Evict(m, 0, Chunk, recycler);
        recycler.Dispose();
        Assert.True(m.GetRangeBytes(Chunk, Chunk).IndexOfAnyExcept((byte)8) < 0);
        Evict(m, Chunk, Chunk, recycler);
        Assert.True(m.GetRangeBytes(Chunk, Chunk).IndexOfAnyExcept((byte)0) < 0);
    }
}
