using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Swap;
using MigrationFabric.Memory.Tests.Support;
using Xunit;

namespace MigrationFabric.Memory.Tests.Swap;

/// <summary>Direct I/O swap files, staged direct placement and the naive baseline's swap readahead.</summary>
public sealed class StagingAndDirectIoTests : IDisposable
{
    private const long Size = 8L << 20;
    private const int Pages = (int)(Size / Page.Size);
    private const int Chunk = 64;
    private readonly string _dir = Directory.CreateTempSubdirectory("mf-staging-test-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private PrivateVirtualMemoryOptions Options(PagingMode mode, long share, int staging = 4, bool directIo = false, int readahead = 8) => new()
    {
        Mode = mode, SharePages = share, ChunkPages = Chunk, PlacementStagingChunks = staging, DirectIo = directIo, NaiveReadaheadPages = readahead,
        SwapFilePath = Path.Combine(_dir, $"vm-{Guid.NewGuid():N}.swap"), ScanAccessBitsPeriodically = false,
    };

    private static byte[] Contents(long page, int version)
    {
        var b = new byte[Page.Size];
        new Random(HashCode.Combine(page, version)).NextBytes(b);
        BitConverter.TryWriteBytes(b, page);
        BitConverter.TryWriteBytes(b.AsSpan(8), version);
        return b;
    }

    private static void AssertPage(ReadOnlySpan<byte> actual, long page, int version)
    {
        if (!actual.SequenceEqual(Contents(page, version)))
            Assert.Fail($"page {page}: expected version {version}, read page {BitConverter.ToInt64(actual)} version {BitConverter.ToInt32(actual[8..])}.");
    }

    private static bool OpenedWithODirect(string path)
    {
        // /proc/self/fdinfo/N has "flags: 0NNNNNN" (octal); O_DIRECT is 040000 on x86-64 and 0200000 on arm64.
        var oDirect = System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture == System.Runtime.InteropServices.Architecture.Arm64 ? 0x10000 : 0x4000;
        foreach (var fd in Directory.GetFiles("/proc/self/fd"))
        {
            string target;
            try { target = new FileInfo(fd).LinkTarget ?? ""; }
            catch (IOException) { continue; }
            if (target != path) continue;
            var flags = File.ReadLines($"/proc/self/fdinfo/{Path.GetFileName(fd)}").First(l => l.StartsWith("flags:", StringComparison.Ordinal));
            return (Convert.ToInt32(flags["flags:".Length..].Trim(), 8) & oDirect) != 0;
        }
        throw new InvalidOperationException($"no open descriptor for {path}");
    }

    [Fact]
    public void A_direct_io_swap_file_bypasses_the_page_cache_and_round_trips_aligned_and_unaligned_buffers()
    {
        var path = Path.Combine(_dir, "direct.swap");
        using var swap = PrivateSwapFile.Create(path, 8, directIo: true);
        Assert.True(swap.DirectIo);
        Assert.True(OpenedWithODirect(path), "the swap file was not opened with O_DIRECT");

        // A managed array is not page-aligned: it goes through the bounce page.
        var unaligned = new byte[Page.Size + 1].AsSpan(1);
        Contents(3, 1).CopyTo(unaligned);
        swap.Write(3, unaligned);
        var back = new byte[Page.Size + 8].AsSpan(8, Page.Size);
        swap.Read(3, back);
        AssertPage(back, 3, 1);

        // Guest memory is page-aligned: runs go straight to the disk.
        using var memory = new GuestMemory(4 * Page.Size);
        for (var p = 0; p < 4; p++) Contents(p, 2).CopyTo(memory.GetPageBytes(p));
        swap.WriteRun(4, 4, memory.GetRangeBytes(0, 4));
        var run = new byte[4 * Page.Size];
        swap.ReadRun(4, 4, run);
        for (var p = 0; p < 4; p++) AssertPage(run.AsSpan(p * Page.Size, Page.Size), p, 2);
        Assert.Throws<ArgumentException>(() => swap.Write(0, new byte[100]));
    }

    [Fact]
    public async Task Placed_swap_pages_wait_in_a_staging_buffer_are_read_and_updated_there_and_reach_the_file_on_flush()
    {
        using var memory = new GuestMemory(Size);
        await using var pvm = new PrivateVirtualMemory(memory, Options(PagingMode.AsyncMethod1, share: Chunk * 2));
        // Fill the share (minus its one-chunk reserve), then half of chunk 4: those go to swap and wait staged.
        for (long p = 0; p < Chunk; p++) Assert.Equal(PlacementTarget.Memory, pvm.PlacePage(p, Contents(p, 1)));
        long first = 4 * Chunk;
        for (long p = first; p < first + Chunk / 2; p++) Assert.Equal(PlacementTarget.Swap, pvm.PlacePage(p, Contents(p, 1)));
        Assert.Equal(1, pvm.StagedChunks);
        Assert.Equal(PageResidency.Swapped, memory.GetResidency(first));

        var buf = new byte[Page.Size];
        Assert.Equal(PageResidency.Swapped, pvm.ReadPage(first + 1, buf));
        AssertPage(buf, first + 1, 1);
        // A retransfer updates the staged copy in place.
        Assert.Equal(PlacementTarget.Swap, pvm.PlacePage(first + 1, Contents(first + 1, 2)));
        pvm.ReadPage(first + 1, buf);
        AssertPage(buf, first + 1, 2);

        pvm.FlushPlacements();
        Assert.Equal(0, pvm.StagedChunks);
        // A retransfer of a page already in its slot is staged again, and a page-in sees it.
        Assert.Equal(PlacementTarget.Swap, pvm.PlacePage(first + 2, Contents(first + 2, 3)));
        Assert.Equal(1, pvm.StagedChunks);
        pvm.ReadPage(first + 2, buf);
        AssertPage(buf, first + 2, 3);
        pvm.FlushPlacements();
        // Straight from the file now.
        for (long p = first; p < first + Chunk / 2; p++)
        {
            pvm.SwapFile.Read((int)(p - first) + SlotBase(pvm, first), buf);
            AssertPage(buf, p, p == first + 1 ? 2 : p == first + 2 ? 3 : 1);
        }
        var s = pvm.Statistics.Snapshot();
        Assert.Equal(0, s.PageIns + s.PageOuts);
    }

    // The chunk's run starts at the slot its first page was read from (the file is all zeroes elsewhere).
    private static int SlotBase(PrivateVirtualMemory pvm, long firstPage)
    {
        var buf = new byte[Page.Size];
        for (var slot = 0; slot < pvm.SwapFile.SlotCount; slot += Chunk)
        {
            pvm.SwapFile.Read(slot, buf);
            if (BitConverter.ToInt64(buf) == firstPage && buf.AsSpan(8).IndexOfAnyExcept((byte)0) >= 0) return slot;
        }
        throw new InvalidOperationException($"no swap run holds page {firstPage}");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_completed_chunk_is_written_by_the_writer_thread_or_the_placing_one_and_counted(bool asyncWrites)
    {
        using var memory = new GuestMemory(Size);
        var options = Options(PagingMode.AsyncMethod1, share: Chunk * 2);
        options.AsyncPlacementWrites = asyncWrites;
        await using var pvm = new PrivateVirtualMemory(memory, options);
        for (long p = 0; p < Chunk; p++) Assert.Equal(PlacementTarget.Memory, pvm.PlacePage(p, Contents(p, 1)));
        long first = 3 * Chunk;
        for (long p = first; p < first + Chunk; p++) Assert.Equal(PlacementTarget.Swap, pvm.PlacePage(p, Contents(p, 1)));
        if (!asyncWrites) Assert.Equal(0, pvm.StagedChunks);
        await pvm.SettleAsync().WaitAsync(VcpuThread.Generous);
        Assert.Equal(0, pvm.StagedChunks);
        var s = pvm.Statistics.Snapshot();
        Assert.Equal(Chunk, s.PlacementWrites);
        Assert.True(s.PlaceTime >= s.PlacementWriteIo && s.PlacementWriteIo > TimeSpan.Zero, $"place {s.PlaceTime}, writes {s.PlacementWriteIo}");
        AssertChunkInSwap(pvm, first, version: 1);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_streams_own_flush_of_scattered_retransfers_puts_its_runs_on_a_ring_or_pwrites_them_when_rings_are_off(bool rings)
    {
        using var memory = new GuestMemory(Size);
        var options = Options(PagingMode.AsyncMethod1, share: Chunk * 2, staging: 4);
        options.AsyncPlacementWrites = false;
        options.PlacementWritesOnIoUring = rings;
        await using var pvm = new PrivateVirtualMemory(memory, options);
        for (long p = 0; p < Chunk; p++) Assert.Equal(PlacementTarget.Memory, pvm.PlacePage(p, Contents(p, 1)));
        // Every other page of five chunks, as a stop-and-copy's scattered retransfers arrive: the fifth chunk finds every buffer
        // taken and its stream writes one out, Chunk / 2 runs of one page each.
        for (long c = 3; c <= 7; c++)
        {
            for (long p = c * Chunk; p < (c + 1) * Chunk; p += 2) Assert.Equal(PlacementTarget.Swap, pvm.PlacePage(p, Contents(p, 2)));
        }
        var s = pvm.Statistics.Snapshot();
        Assert.Equal(1, s.StreamStageFlushes);
        Assert.Equal(Chunk / 2, s.PlacementWrites);
        var ringsWork = pvm.PlacementRingRefusal is null;
        Assert.Equal(rings && ringsWork ? Chunk / 2 : 0, s.PlacementRingWrites);
        pvm.FlushPlacements();
        var buf = new byte[Page.Size];
        for (long c = 3; c <= 7; c++)
        {
            for (long p = c * Chunk; p < (c + 1) * Chunk; p += 2)
            {
                Assert.Equal(PageResidency.Swapped, pvm.ReadPage(p, buf));
                Assert.True(buf.AsSpan().SequenceEqual(Contents(p, 2)), $"page {p}");
            }
        }
    }

    [Fact]
    public async Task A_stream_writes_a_staged_chunk_itself_when_every_buffer_is_taken_and_it_is_counted()
    {
        using var memory = new GuestMemory(Size);
        var options = Options(PagingMode.AsyncMethod1, share: Chunk * 2, staging: 4);
        options.AsyncPlacementWrites = false;
        await using var pvm = new PrivateVirtualMemory(memory, options);
        for (long p = 0; p < Chunk; p++) Assert.Equal(PlacementTarget.Memory, pvm.PlacePage(p, Contents(p, 1)));
        // Half of each of five chunks, as sparse retransfers arrive (none completes): the fifth finds no buffer and its stream writes one out.
        for (long c = 3; c <= 7; c++)
        {
            for (long p = c * Chunk; p < c * Chunk + Chunk / 2; p++) Assert.Equal(PlacementTarget.Swap, pvm.PlacePage(p, Contents(p, 1)));
        }
        Assert.Equal(1, pvm.Statistics.Snapshot().StreamStageFlushes);
        Assert.Equal(4, pvm.StagedChunks);
        pvm.FlushPlacements();
        var buf = new byte[Page.Size];
        for (long c = 3; c <= 7; c++)
        {
            for (long p = c * Chunk; p < c * Chunk + Chunk / 2; p++)
            {
                Assert.Equal(PageResidency.Swapped, pvm.ReadPage(p, buf));
                AssertPage(buf, p, 1);
            }
        }
    }

    /// <summary>The chunk starting at page <paramref name="first"/> sits in one swap run, each page in its slot with its <paramref name="version"/> contents.</summary>
    private static void AssertChunkInSwap(PrivateVirtualMemory pvm, long first, int version)
    {
        var buf = new byte[Page.Size];
        var slot = SlotBase(pvm, first);
        for (long p = first; p < first + Chunk; p++)
        {
            pvm.SwapFile.Read(slot + (int)(p - first), buf);
            AssertPage(buf, p, version);
        }
    }

    [Fact]
    public async Task Several_placement_writers_write_every_completed_chunk_with_its_own_pages()
    {
        using var memory = new GuestMemory(Size);
        var options = Options(PagingMode.AsyncMethod1, share: Chunk * 2, staging: 8);
        options.PlacementWriters = 3;
        await using var pvm = new PrivateVirtualMemory(memory, options);
        for (long p = 0; p < Chunk; p++) Assert.Equal(PlacementTarget.Memory, pvm.PlacePage(p, Contents(p, 1)));
        // Eight chunks to swap from four placing threads at once: three writers take the completed chunks concurrently.
        long first = 4 * Chunk, count = 8 * Chunk;
        var placers = Enumerable.Range(0, 4).Select(t => Task.Run(() =>
        {
            for (long p = first + t * (count / 4); p < first + (t + 1) * (count / 4); p++) Assert.Equal(PlacementTarget.Swap, pvm.PlacePage(p, Contents(p, 1)));
        })).ToArray();
        await Task.WhenAll(placers).WaitAsync(VcpuThread.Generous);
        await pvm.SettleAsync().WaitAsync(VcpuThread.Generous);
        Assert.Equal(0, pvm.StagedChunks);
        Assert.Equal(count, pvm.Statistics.Snapshot().PlacementWrites);
        for (long c = first; c < first + count; c += Chunk) AssertChunkInSwap(pvm, c, version: 1);
    }

    [Fact]
    public async Task With_a_hot_reserve_first_copies_leave_it_free_and_retransfers_of_swapped_pages_move_into_it_without_a_read()
    {
        using var memory = new GuestMemory(Size);
        var options = Options(PagingMode.AsyncMethod1, share: Chunk * 4);
        options.HotReservePages = Chunk / 2;
        await using var pvm = new PrivateVirtualMemory(memory, options);
        using var mmu = new SoftwareMmu(memory, pvm);
        // Share 4 chunks, free reserve 1 chunk, hot reserve half a chunk: first copies fill 2.5 chunks of memory.
        var room = Chunk * 4 - Chunk - Chunk / 2;
        for (long p = 0; p < Pages; p++) pvm.PlacePage(p, Contents(p, 1));
        Assert.Equal(room, memory.ResidentPages);
        Assert.Equal(Pages - room, memory.CountOf(PageResidency.Swapped));

        // Retransfers of swapped pages (one staged, in the last chunk placed; the others written) go into memory while the
        // hot reserve lasts, then are updated in swap as before.
        var hot = Enumerable.Range(0, Chunk / 2 + 3).Select(i => (long)(Pages - 1 - i * 5)).ToArray();
        var targets = hot.Select(p => pvm.PlacePage(p, Contents(p, 2))).ToArray();
        Assert.Equal(Chunk / 2, targets.Count(t => t == PlacementTarget.Memory));
        Assert.Equal(3, targets.Count(t => t == PlacementTarget.Swap));
        Assert.Equal(room + Chunk / 2, memory.ResidentPages);
        var s = pvm.Statistics.Snapshot();
        Assert.Equal(0, s.PageIns + s.PageOuts);
        Assert.Equal(Chunk / 2, s.UpdatedInMemory);

        pvm.FlushPlacements();
        await pvm.SettleAsync().WaitAsync(VcpuThread.Generous);
        // Evict everything and read it all back through faults: a promoted page's stale staged or slot copy must not win.
        pvm.SetSharePages(Chunk);
        await pvm.SettleAsync().WaitAsync(VcpuThread.Generous);
        await VcpuThread.Start(() =>
        {
            using var cpu = mmu.CreateVcpu();
            var buf = new byte[Page.Size];
            for (long p = 0; p < Pages; p++)
            {
                cpu.Read(p * Page.Size, buf);
                AssertPage(buf, p, hot.Contains(p) ? 2 : 1);
            }
        }).WaitAsync(VcpuThread.Generous);
    }

    [Fact]
    public void A_hot_reserve_over_half_the_share_is_refused_by_name()
    {
        var options = Options(PagingMode.AsyncMethod1, share: Chunk * 2);
        options.HotReservePages = Chunk + 1;
        using var memory = new GuestMemory(Size);
        Assert.Contains("HotReservePages", Assert.Throws<ArgumentException>(() => new PrivateVirtualMemory(memory, options)).Message);
    }

    [Fact]
    public async Task Retransfers_racing_the_placement_writer_keep_the_newest_bytes_in_swap()
    {
        using var memory = new GuestMemory(Size);
        await using var pvm = new PrivateVirtualMemory(memory, Options(PagingMode.AsyncMethod1, share: Chunk * 2, staging: 2));
        for (long p = 0; p < Chunk; p++) pvm.PlacePage(p, Contents(p, 1));
        // One stream places whole chunks (each completed chunk goes to the writer) while another retransfers pages of the
        // chunks placed so far, newest version each time: whatever the writer is doing, the last version must win.
        var placed = Chunk - 1L;
        var versions = new int[Pages];
        var first = Task.Run(() =>
        {
            for (long p = Chunk; p < Pages; p++)
            {
                pvm.PlacePage(p, Contents(p, 1));
                versions[p] = 1;
                Volatile.Write(ref placed, p);
            }
        });
        var retransfers = Task.Run(() =>
        {
            var rng = new Random(7);
            while (!first.IsCompleted)
            {
                var last = Volatile.Read(ref placed);
                if (last < 2 * Chunk) { Thread.Yield(); continue; }
                // Pages of chunks the first stream has finished: it no longer writes them.
                var p = rng.NextInt64(Chunk, last - last % Chunk);
                var v = Volatile.Read(ref versions[p]) + 1;
                pvm.PlacePage(p, Contents(p, v));
                Volatile.Write(ref versions[p], v);
            }
        });
        await Task.WhenAll(first, retransfers).WaitAsync(VcpuThread.Generous);
        pvm.FlushPlacements();
        await pvm.SettleAsync().WaitAsync(VcpuThread.Generous);
        Assert.Equal(0, pvm.StagedChunks);
        var buf = new byte[Page.Size];
        for (long p = Chunk; p < Pages; p++)
        {
            Assert.Equal(PageResidency.Swapped, pvm.ReadPage(p, buf));
            AssertPage(buf, p, versions[p]);
        }
        Assert.Null(pvm.LastBackgroundError);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task With_one_staging_buffer_many_chunks_placed_at_once_all_land_and_page_in_byte_exact(bool directIo)
    {
        using var memory = new GuestMemory(Size);
        await using var pvm = new PrivateVirtualMemory(memory, Options(PagingMode.AsyncMethod1, share: Chunk * 2, staging: 1, directIo: directIo));
        using var mmu = new SoftwareMmu(memory, pvm);
        // Four streams place interleaved pages of different chunks, as concurrent page streams do.
        var streams = Enumerable.Range(0, 4).Select(s => Task.Run(() =>
        {
            for (long p = s; p < Pages; p += 4) pvm.PlacePage(p, Contents(p, 1));
        })).ToArray();
        await Task.WhenAll(streams).WaitAsync(VcpuThread.Generous);
        Assert.True(pvm.StagedChunks <= 1);
        Assert.Equal(0, pvm.Statistics.Snapshot().PageOuts);

        // The VM runs: every page, staged or written, faults in byte-exact.
        await VcpuThread.Start(() =>
        {
            using var cpu = mmu.CreateVcpu();
            var buf = new byte[Page.Size];
            for (long p = 0; p < Pages; p++)
            {
                cpu.Read(p * Page.Size, buf);
                AssertPage(buf, p, 1);
            }
        }).WaitAsync(VcpuThread.Generous);
        Assert.True(pvm.Statistics.Snapshot().PageIns > 0);
    }

    [Theory]
    [InlineData(8, 8)]
    [InlineData(1, 1)]
    public async Task A_naive_fault_reads_the_aligned_readahead_window_around_the_page(int readahead, int expectedPageIns)
    {
        using var memory = new GuestMemory(Size);
        await using var pvm = new PrivateVirtualMemory(memory, Options(PagingMode.Naive, share: Chunk * 2, readahead: readahead));
        using var mmu = new SoftwareMmu(memory, pvm);
        await VcpuThread.Start(() =>
        {
            using var cpu = mmu.CreateVcpu();
            for (long p = 0; p < Chunk * 4; p++) cpu.Write(p * Page.Size, Contents(p, 1));
        }).WaitAsync(VcpuThread.Generous);
        await pvm.SettleAsync().WaitAsync(VcpuThread.Generous);
        Assert.Equal(PageResidency.Swapped, memory.GetResidency(13));
        var before = pvm.Statistics.Snapshot();

        await VcpuThread.Start(() =>
        {
            using var cpu = mmu.CreateVcpu();
            var buf = new byte[Page.Size];
            cpu.Read(13 * Page.Size, buf);
            AssertPage(buf, 13, 1);
        }).WaitAsync(VcpuThread.Generous);

        var d = pvm.Statistics.Snapshot().Since(before);
        Assert.Equal(1, d.Faults);
        Assert.Equal(expectedPageIns, d.PageIns);
        // The vCPU waited for the read: the fault's time covers the swap read's.
        Assert.True(d.PageInIo > TimeSpan.Zero && d.FaultTime >= d.PageInIo, $"read {d.PageInIo}, fault {d.FaultTime}");
        // The window is aligned: pages 8..15 for page 13.
        for (long p = 0; p < Chunk; p++)
        {
            var inWindow = p / readahead == 13 / readahead;
            Assert.Equal(inWindow ? PageResidency.Resident : PageResidency.Swapped, memory.GetResidency(p));
        }
    }

    [Fact]
    public void Staging_and_readahead_options_are_validated_by_name()
    {
        var e = Assert.Throws<ArgumentException>(() => new PrivateVirtualMemoryOptions { NaiveReadaheadPages = 6 }.Validate(Pages));
        Assert.Contains("NaiveReadaheadPages", e.Message);
        e = Assert.Throws<ArgumentException>(() => new PrivateVirtualMemoryOptions { PlacementStagingChunks = -1 }.Validate(Pages));
        Assert.Contains("PlacementStagingChunks", e.Message);
        e = Assert.Throws<ArgumentException>(() => new PrivateVirtualMemoryOptions { PlacementWriters = 0 }.Validate(Pages));
        Assert.Contains("PlacementWriters", e.Message);
    }
}
