using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Pages;
using Xunit;

namespace MigrationFabric.Memory.Tests.Guest;

/// <summary>FramePool and GuestMemory.AdoptFrames: RAM set aside ahead of pages, moved under them without changing what they hold.</summary>
public class FramePoolTests
{
    private const long Size = 16L << 20;

    [Fact]
    public unsafe void Adopted_frames_are_RAM_under_zero_pages_that_still_read_zero_and_installs_land_on_them()
    {
        if (!OperatingSystem.IsLinux()) return;
        using var m = new GuestMemory(Size);
        using var pool = new FramePool(128);
        if (!pool.Populate(CancellationToken.None)) { Console.Error.WriteLine("SKIPPED: this kernel has no MADV_POPULATE_WRITE (Linux < 5.14)"); return; }
        var at = (nint)m.Base + 256 * Page.Size;
        Assert.Equal(0, NativeMappingTests.ResidentPagesOf(at, 64));

        Assert.True(m.AdoptFrames(pool, 256, 64));

        // The frames moved (RAM is there now, none left behind in the pool's part), and nothing a reader sees changed.
        Assert.Equal(64, NativeMappingTests.ResidentPagesOf(at, 64));
        Assert.Equal(0, NativeMappingTests.ResidentPagesOf(at + 64 * Page.Size, 64));
        Assert.Equal(64, pool.FreePages);
        Assert.Equal(m.PageCount, m.CountOf(PageResidency.Zero));
        Assert.Equal(0, m.ResidentPages);
        Assert.True(m.GetRangeBytes(256, 64).IndexOfAnyExcept((byte)0) < 0);
        var page = new byte[Page.Size];
        Random.Shared.NextBytes(page);
        Assert.True(m.TryInstall(300, PageResidency.Zero, page));
        Assert.True(m.GetPageBytes(300).SequenceEqual(page));
        Assert.Null(pool.Refusal);
    }

    [Fact]
    public void A_range_holding_a_page_that_is_not_zero_keeps_its_bytes_and_gets_no_frames()
    {
        using var m = new GuestMemory(Size);
        using var pool = new FramePool(64);
        pool.Populate(CancellationToken.None);
        var page = new byte[Page.Size];
        Random.Shared.NextBytes(page);
        Assert.True(m.TryInstall(40, PageResidency.Zero, page));
        Assert.True(m.TryTransition(50, PageResidency.Zero, PageResidency.Swapped));

        Assert.False(m.AdoptFrames(pool, 0, 64));

        Assert.True(m.GetPageBytes(40).SequenceEqual(page));
        Assert.Equal(PageResidency.Resident, m.GetResidency(40));
        Assert.Equal(PageResidency.Swapped, m.GetResidency(50));
        Assert.Equal(m.PageCount - 2, m.CountOf(PageResidency.Zero));
        Assert.Equal(0, m.CountOf(PageResidency.Installing));
        Assert.Equal(64, pool.FreePages);
    }

    [Fact]
    public void A_pool_with_too_few_frames_left_moves_none_and_a_disposed_pool_moves_none_and_refuses_to_populate()
    {
        using var m = new GuestMemory(Size);
        var pool = new FramePool(96);
        if (OperatingSystem.IsLinux()) Assert.True(m.AdoptFrames(pool, 0, 64));
        Assert.False(m.AdoptFrames(pool, 64, 64));
        Assert.Equal(m.PageCount, m.CountOf(PageResidency.Zero));
        pool.Dispose();
        Assert.Equal(0, pool.FreePages);
        Assert.False(m.AdoptFrames(pool, 128, 1));
        if (OperatingSystem.IsLinux()) Assert.Throws<ObjectDisposedException>(() => pool.Populate(CancellationToken.None));
        Assert.Throws<ArgumentOutOfRangeException>(() => m.AdoptFrames(pool, m.PageCount - 1, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => new FramePool(0));
    }

    [Fact]
    public void A_move_the_kernel_refuses_is_reported_with_its_errno_and_the_pool_moves_nothing_after_it()
    {
        if (!OperatingSystem.IsLinux()) return;
        using var m = new GuestMemory(Size);
        using var pool = new FramePool(128);
        // An unaligned target: mremap refuses it (EINVAL) and nothing moves.
        Assert.False(pool.TryMoveTo(1, 64));
        Assert.Contains("mremap", pool.Refusal);
        Assert.Contains("errno 22", pool.Refusal);
        Assert.Equal(128, pool.FreePages);
        // Refused once, refused after: the caller populates in place instead, and Refusal says why.
        Assert.False(m.AdoptFrames(pool, 0, 64));
        Assert.Equal(m.PageCount, m.CountOf(PageResidency.Zero));
        Assert.Equal(128, pool.FreePages);
    }

    [Fact]
    public void A_pool_the_host_cannot_map_is_refused_as_insufficient_memory_with_its_errno()
    {
        if (!OperatingSystem.IsLinux()) return;
        // 2^38 pages = 1 PiB, beyond the 128 TiB user address space of x86-64 and arm64.
        var e = Assert.Throws<InsufficientMemoryException>(() => new FramePool(1L << 38));
        Assert.Contains("errno 12", e.Message);
    }

    [Fact]
    public void Frames_moved_to_guest_memory_stay_there_after_the_pool_is_disposed()
    {
        if (!OperatingSystem.IsLinux()) return;
        using var m = new GuestMemory(Size);
        var pool = new FramePool(64);
        Assert.True(m.AdoptFrames(pool, 1000, 64));
        pool.Dispose();
        // The guest owns them: written, read back, discarded and written again like any guest page.
        var page = new byte[Page.Size];
        Random.Shared.NextBytes(page);
        for (long p = 1000; p < 1064; p++) Assert.True(m.TryInstall(p, PageResidency.Zero, page));
        Assert.True(m.GetPageBytes(1063).SequenceEqual(page));
        Assert.True(m.TryDiscard(1063, PageResidency.Zero));
        Assert.True(m.GetPageBytes(1063).IndexOfAnyExcept((byte)0) < 0);
    }

    [Fact]
    public void Cancelled_population_stops_and_the_frames_still_move()
    {
        using var m = new GuestMemory(Size);
        using var pool = new FramePool(FramePool.PopulateStepPages * 2);
        if (OperatingSystem.IsLinux())
            Assert.Throws<OperationCanceledException>(() => pool.Populate(new CancellationToken(canceled: true)));
        Assert.Equal(OperatingSystem.IsLinux(), m.AdoptFrames(pool, 0, 64));
    }

    [Fact]
    public void Installs_racing_frame_moves_on_other_threads_never_lose_a_page()
    {
        if (!OperatingSystem.IsLinux()) return;
        using var m = new GuestMemory(Size);
        int pages = (int)m.PageCount;
        using var pool = new FramePool(pages * 4L);
        pool.Populate(CancellationToken.None);
        using var start = new Barrier(2);
        long next = 0, adopted = 0;
        // One thread installs every page in order while the other keeps moving a frame under the page it is about to
        // install: each move lands either before the install (which then writes on the new frame) or is refused.
        var installer = new Thread(() =>
        {
            Span<byte> page = stackalloc byte[Page.Size];
            start.SignalAndWait();
            for (long p = 0; p < pages; p++)
            {
                Volatile.Write(ref next, p);
                page.Fill((byte)(p * 31 + 7));
                BitConverter.TryWriteBytes(page, p);
                var spin = new SpinWait();
                while (!m.TryInstall(p, PageResidency.Zero, page)) spin.SpinOnce();
            }
            Volatile.Write(ref next, pages);
        });
        var mover = new Thread(() =>
        {
            start.SignalAndWait();
            for (long p; (p = Volatile.Read(ref next)) < pages && pool.FreePages > 0;)
                if (m.AdoptFrames(pool, p, 1)) adopted++;
        });
        installer.Start();
        mover.Start();
        installer.Join();
        mover.Join();

        Span<byte> expected = stackalloc byte[Page.Size];
        for (long p = 0; p < pages; p++)
        {
            expected.Fill((byte)(p * 31 + 7));
            BitConverter.TryWriteBytes(expected, p);
            Assert.True(m.GetPageBytes(p).SequenceEqual(expected), $"page {p} lost its bytes ({adopted} frames moved)");
        }
        Assert.Equal(pages, m.ResidentPages);
        Assert.Equal(0, m.CountOf(PageResidency.Installing));
        Assert.Equal(pages * 4L - adopted, pool.FreePages);
    }
}
