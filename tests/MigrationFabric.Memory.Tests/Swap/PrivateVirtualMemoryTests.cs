using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Swap;
using MigrationFabric.Memory.Tests.Support;
using Xunit;

namespace MigrationFabric.Memory.Tests.Swap;

public sealed class PrivateVirtualMemoryTests : IDisposable
{
    private const long Size = 16L << 20;
    private const int Pages = (int)(Size / Page.Size);
    private readonly string _dir = Directory.CreateTempSubdirectory("mf-pvm-test-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private PrivateVirtualMemoryOptions Options(PagingMode mode, long share, int chunkPages = 256) => new()
    {
        Mode = mode,
        SharePages = share,
        ChunkPages = chunkPages,
        SwapFilePath = Path.Combine(_dir, $"vm-{Guid.NewGuid():N}.swap"),
        ScanAccessBitsPeriodically = false,
    };

    /// <summary>Deterministic contents of <paramref name="page"/> at <paramref name="version"/>, unique per (page, version).</summary>
    private static void Fill(Span<byte> bytes, long page, int version)
    {
        var rng = new Random(HashCode.Combine(page, version));
        rng.NextBytes(bytes);
        BitConverter.TryWriteBytes(bytes, page);
        BitConverter.TryWriteBytes(bytes[8..], version);
    }

    private static byte[] Expected(long page, int version)
    {
        var b = new byte[Page.Size];
        Fill(b, page, version);
        return b;
    }

    private static void AssertPage(ReadOnlySpan<byte> actual, long page, int version)
    {
        if (!actual.SequenceEqual(Expected(page, version)))
            Assert.Fail($"page {page}: bytes differ from version {version} (read page {BitConverter.ToInt64(actual)}, version {BitConverter.ToInt32(actual[8..])}).");
    }

    [Theory]
    [InlineData(PagingMode.AsyncMethod1)]
    [InlineData(PagingMode.AsyncMethod2)]
    [InlineData(PagingMode.Naive)]
    public async Task Pages_paged_out_are_byte_exact_in_swap_and_come_back_byte_exact(PagingMode mode)
    {
        const long share = Pages / 4;
        using var memory = new GuestMemory(Size);
        await using var pvm = new PrivateVirtualMemory(memory, Options(mode, share));
        using var mmu = new SoftwareMmu(memory, pvm);

        await VcpuThread.Start(() =>
        {
            using var cpu = mmu.CreateVcpu();
            var buf = new byte[Page.Size];
            for (long p = 0; p < Pages; p++)
            {
                Fill(buf, p, 1);
                cpu.Write(p * Page.Size, buf);
            }
        }).WaitAsync(VcpuThread.Generous);
        await pvm.SettleAsync().WaitAsync(VcpuThread.Generous);

        Assert.True(memory.ResidentPages <= share, $"{memory.ResidentPages} pages resident, share {share}");
        var counts = memory.CountByResidency();
        Assert.Equal(Pages, counts[(int)PageResidency.Resident] + counts[(int)PageResidency.Swapped]);
        Assert.True(counts[(int)PageResidency.Swapped] >= Pages - share);

        // The swap file holds every swapped page byte for byte (read-through reads the slot, pages nothing in).
        var before = pvm.Statistics.Snapshot();
        var page = new byte[Page.Size];
        for (long p = 0; p < Pages; p++)
        {
            var from = pvm.ReadPage(p, page);
            Assert.Equal(memory.GetResidency(p), from);
            AssertPage(page, p, 1);
        }
        var afterReads = pvm.Statistics.Snapshot();
        Assert.Equal(before.PageIns, afterReads.PageIns);
        Assert.Equal(counts[(int)PageResidency.Swapped], afterReads.ReadFromSwap - before.ReadFromSwap);

        // A vCPU reading everything back faults the swapped pages in and sees what it wrote.
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
        await pvm.SettleAsync().WaitAsync(VcpuThread.Generous);

        var stats = pvm.Statistics.Snapshot();
        Assert.True(stats.PageOuts >= 2 * (Pages - share), $"page-outs {stats.PageOuts}");
        Assert.True(stats.PageIns >= Pages - share, $"page-ins {stats.PageIns}");
        Assert.Equal(stats.PageIns * Page.Size, stats.PageInBytes);
        Assert.True(memory.ResidentPages <= share);
        switch (mode)
        {
            case PagingMode.AsyncMethod1:
                Assert.Equal(0, stats.PageInsAsync);
                Assert.True(stats.PageOutsAsync > 0);
                // Whole chunks came in onto evicted chunks' frames, and read back byte for byte above.
                if (OperatingSystem.IsLinux()) Assert.True(pvm.Recycler!.Adopted > 0 && pvm.Recycler.Refusal is null, $"recycled {pvm.Recycler.Adopted} ({pvm.Recycler.Refusal})");
                break;
            case PagingMode.AsyncMethod2:
                Assert.True(stats.PageInsAsync > 0, "method 2 pages the rest of a chunk in on the page-in thread");
                Assert.True(stats.PageInsSync > 0);
                break;
            case PagingMode.Naive:
                Assert.Null(pvm.Recycler);
                // One fault reads its page and the rest of its aligned readahead window (8 pages by default).
                Assert.Equal(0, stats.PageInsAsync);
                Assert.InRange(stats.PageInsSync, stats.Faults, 8 * stats.Faults);
                break;
        }
    }

    [Theory]
    [InlineData(PagingMode.AsyncMethod1)]
    [InlineData(PagingMode.AsyncMethod2)]
    [InlineData(PagingMode.Naive)]
    public async Task Concurrent_vcpus_under_paging_always_see_their_last_write(PagingMode mode)
    {
        const int vcpus = 3, opsPerVcpu = 3000;
        using var memory = new GuestMemory(Size);
        await using var pvm = new PrivateVirtualMemory(memory, Options(mode, Pages / 4, chunkPages: 64));
        using var mmu = new SoftwareMmu(memory, pvm);
        var versions = new int[Pages];
        using var stop = new CancellationTokenSource();

        // The LRU is harvested and aged while the vCPUs run, as the periodic scan would.
        var scanner = Task.Run(async () =>
        {
            var n = 0;
            while (!stop.IsCancellationRequested)
            {
                pvm.ScanAccessBits();
                if (++n % 5 == 0) pvm.AgeNow();
                await Task.Yield();
            }
        });

        var threads = Enumerable.Range(0, vcpus).Select(id => VcpuThread.Start(() =>
        {
            using var cpu = mmu.CreateVcpu();
            var rng = new Random(id);
            var buf = new byte[Page.Size];
            // Every page of this vCPU first, four times the share in all: later touches must fault pages back in.
            for (long p = id; p < Pages; p += vcpus)
            {
                Fill(buf, p, ++versions[p]);
                cpu.Write(p * Page.Size, buf);
            }
            long hot = rng.Next(Pages);
            for (var i = 0; i < opsPerVcpu; i++)
            {
                // Mostly near a wandering hot spot, sometimes anywhere: faults, page-ins and evictions of neighbours all happen.
                if (rng.Next(8) == 0) hot = rng.Next(Pages);
                var p = (hot + rng.Next(96)) % Pages;
                p -= p % vcpus;
                p += id;
                if (p >= Pages) continue;
                if (versions[p] > 0 && rng.Next(2) == 0)
                {
                    cpu.Read(p * Page.Size, buf);
                    AssertPage(buf, p, versions[p]);
                }
                else
                {
                    Fill(buf, p, ++versions[p]);
                    cpu.Write(p * Page.Size, buf);
                }
            }
        })).ToArray();
        await Task.WhenAll(threads).WaitAsync(TimeSpan.FromSeconds(120));
        await stop.CancelAsync();
        await scanner.WaitAsync(VcpuThread.Generous);
        await pvm.SettleAsync().WaitAsync(VcpuThread.Generous);

        var page = new byte[Page.Size];
        for (long p = 0; p < Pages; p++)
        {
            pvm.ReadPage(p, page);
            if (versions[p] == 0) Assert.True(page.AsSpan().IndexOfAnyExcept((byte)0) < 0, $"page {p} was never written but is not zero");
            else AssertPage(page, p, versions[p]);
        }
        var stats = pvm.Statistics.Snapshot();
        Assert.True(stats.PageOuts > 0 && stats.PageIns > 0, $"the run must page: {stats}");
        Assert.Null(pvm.LastBackgroundError);
    }

    [Fact]
    public async Task Direct_placement_fills_the_share_then_swap_without_paging_and_retransfers_update_in_place()
    {
        using var memory = new GuestMemory(Size);
        await using var pvm = new PrivateVirtualMemory(memory, Options(PagingMode.AsyncMethod1, 1000));
        var share = pvm.SharePages - pvm.FreeReservePages;
        Assert.Equal(1000 - 256, share);
        var buf = new byte[Page.Size];
        for (long p = 0; p < Pages; p++)
        {
            Fill(buf, p, 1);
            var target = pvm.PlacePage(p, buf);
            Assert.Equal(p < share ? PlacementTarget.Memory : PlacementTarget.Swap, target);
        }
        Assert.Equal(share, memory.ResidentPages);

        // Retransfer of dirty pages on both sides of the boundary: updated where they are.
        long[] retransfer = [0, 7, share - 1, share, share + 1, Pages - 1];
        foreach (var p in retransfer)
        {
            Fill(buf, p, 2);
            Assert.Equal(p < share ? PlacementTarget.Memory : PlacementTarget.Swap, pvm.PlacePage(p, buf));
        }

        var stats = pvm.Statistics.Snapshot();
        Assert.Equal(share, stats.PlacedInMemory);
        Assert.Equal(Pages - share, stats.PlacedInSwap);
        Assert.Equal(3, stats.UpdatedInMemory);
        Assert.Equal(3, stats.UpdatedInSwap);
        Assert.Equal(0, stats.PageIns);
        Assert.Equal(0, stats.PageOuts);

        for (long p = 0; p < Pages; p++)
        {
            Assert.Equal(p < share ? PageResidency.Resident : PageResidency.Swapped, memory.GetResidency(p));
            pvm.ReadPage(p, buf);
            AssertPage(buf, p, retransfer.Contains(p) ? 2 : 1);
        }

        // The migrated VM then runs: its vCPU sees the placed contents wherever they were put.
        using var mmu = new SoftwareMmu(memory, pvm);
        await VcpuThread.Start(() =>
        {
            using var cpu = mmu.CreateVcpu();
            var b = new byte[Page.Size];
            for (long p = Pages - 1; p >= 0; p--)
            {
                cpu.Read(p * Page.Size, b);
                AssertPage(b, p, retransfer.Contains(p) ? 2 : 1);
            }
        }).WaitAsync(VcpuThread.Generous);
        await pvm.SettleAsync().WaitAsync(VcpuThread.Generous);
        Assert.True(memory.ResidentPages <= pvm.SharePages);
    }

    [Fact]
    public async Task Naive_placement_pages_out_under_pressure_and_pages_in_to_update_a_swapped_page()
    {
        const long share = 1024;
        using var memory = new GuestMemory(Size);
        await using var pvm = new PrivateVirtualMemory(memory, Options(PagingMode.Naive, share));
        var buf = new byte[Page.Size];
        for (long p = 0; p < Pages; p++)
        {
            Fill(buf, p, 1);
            Assert.Equal(PlacementTarget.Memory, pvm.PlacePage(p, buf));
        }
        var first = pvm.Statistics.Snapshot();
        Assert.True(first.PageOutsSync >= Pages - share, $"naive placement pages out synchronously: {first}");
        Assert.Equal(0, first.PlacedInSwap);
        Assert.True(memory.ResidentPages <= share);

        Assert.Equal(PageResidency.Swapped, memory.GetResidency(0));
        Fill(buf, 0, 2);
        Assert.Equal(PlacementTarget.Memory, pvm.PlacePage(0, buf));
        var second = pvm.Statistics.Snapshot();
        Assert.Equal(first.PageIns + 1, second.PageIns);
        Assert.True(second.PageOuts > first.PageOuts, "making room for the page-in evicted another chunk");
        Assert.Equal(PageResidency.Resident, memory.GetResidency(0));

        for (long p = 0; p < Pages; p++)
        {
            pvm.ReadPage(p, buf);
            AssertPage(buf, p, p == 0 ? 2 : 1);
        }
    }

    [Fact]
    public async Task The_least_recently_used_chunk_is_paged_out_first()
    {
        const int chunk = 64;
        using var memory = new GuestMemory(Size);
        var options = Options(PagingMode.AsyncMethod1, share: 3 * chunk, chunkPages: chunk);
        options.FreeReservePages = 0;
        await using var pvm = new PrivateVirtualMemory(memory, options);
        using var mmu = new SoftwareMmu(memory, pvm);
        using var cpu = mmu.CreateVcpu();
        var buf = new byte[Page.Size];
        void TouchChunk(int c)
        {
            for (var i = 0; i < chunk; i++)
            {
                Fill(buf, c * chunk + i, 1);
                cpu.Write((long)(c * chunk + i) * Page.Size, buf);
            }
        }

        TouchChunk(0);
        TouchChunk(1);
        TouchChunk(2);
        pvm.ScanAccessBits();
        pvm.AgeNow();
        pvm.AgeNow();
        Assert.Equal(pvm.QueueOfChunk(1), pvm.QueueOfChunk(0));
        cpu.ReadUInt64(0);                      // chunk 0 is used again...
        pvm.ScanAccessBits();
        Assert.True(pvm.QueueOfChunk(0) > pvm.QueueOfChunk(1));
        TouchChunk(3);                          // ...so a fourth chunk pushes out chunk 1, the LRU one.
        await pvm.SettleAsync().WaitAsync(VcpuThread.Generous);

        Assert.Equal(PageResidency.Swapped, memory.GetResidency(chunk));
        Assert.Equal(PageResidency.Resident, memory.GetResidency(0));
        Assert.Equal(PageResidency.Resident, memory.GetResidency(2 * chunk));
        Assert.Equal(PageResidency.Resident, memory.GetResidency(3 * chunk));
        Assert.Equal(-1, pvm.QueueOfChunk(1));
    }

    [Fact]
    public async Task A_rebalanced_share_is_paged_down_to_and_the_contents_survive()
    {
        using var memory = new GuestMemory(Size);
        var options = Options(PagingMode.AsyncMethod1, Pages);
        options.FreeReservePages = 0;
        await using var pvm = new PrivateVirtualMemory(memory, options);
        var buf = new byte[Page.Size];
        for (long p = 0; p < Pages; p++)
        {
            Fill(buf, p, 1);
            Assert.Equal(PlacementTarget.Memory, pvm.PlacePage(p, buf));
        }
        Assert.Equal(Pages, memory.ResidentPages);

        // The re-balancer gives this VM a quarter of its size: the page-out thread brings it there.
        var target = new MigrationFabric.Memory.Balancing.MemoryRebalancer().ComputeTargets(
            [new(DemandPages: 900, ReservationPages: 512, MaxPages: Pages, Weight: 1)], hostBudgetPages: Pages / 4)[0];
        Assert.Equal(Pages / 4, target);
        pvm.SetSharePages(target);
        await pvm.SettleAsync().WaitAsync(VcpuThread.Generous);
        Assert.True(memory.ResidentPages <= target - pvm.FreeReservePages, $"{memory.ResidentPages} resident");
        Assert.True(pvm.Statistics.Snapshot().PageOutsAsync >= Pages - target);

        pvm.SetSharePages(Pages);
        var outs = pvm.Statistics.Snapshot().PageOuts;
        using var mmu = new SoftwareMmu(memory, pvm);
        await VcpuThread.Start(() =>
        {
            using var cpu = mmu.CreateVcpu();
            var b = new byte[Page.Size];
            for (long p = 0; p < Pages; p++)
            {
                cpu.Read(p * Page.Size, b);
                AssertPage(b, p, 1);
            }
        }).WaitAsync(VcpuThread.Generous);
        await pvm.SettleAsync().WaitAsync(VcpuThread.Generous);
        Assert.Equal(outs, pvm.Statistics.Snapshot().PageOuts);
        Assert.Equal(Pages, memory.ResidentPages);
        Assert.Throws<ArgumentOutOfRangeException>(() => pvm.SetSharePages(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => pvm.SetSharePages(Pages + 1));
    }

    [Fact]
    public async Task Bad_input_gets_a_clear_error()
    {
        using var memory = new GuestMemory(Size);
        var bad = Options(PagingMode.AsyncMethod1, 1024);
        bad.SwapFilePath = Path.Combine(_dir, "missing-dir", "vm.swap");
        Assert.Contains("missing-dir", Assert.Throws<SwapFileException>(() => new PrivateVirtualMemory(memory, bad)).Message);

        var zeroShare = Options(PagingMode.AsyncMethod1, 1024);
        zeroShare.SharePages = Pages + 1;
        Assert.Contains("SharePages", Assert.Throws<ArgumentException>(() => new PrivateVirtualMemory(memory, zeroShare)).Message);
        var chunkless = Options(PagingMode.AsyncMethod1, 1024, chunkPages: 0);
        Assert.Contains("ChunkPages", Assert.Throws<ArgumentException>(() => new PrivateVirtualMemory(memory, chunkless)).Message);

        await using var pvm = new PrivateVirtualMemory(memory, Options(PagingMode.AsyncMethod1, 1024));
        var page = new byte[Page.Size];
        Assert.Contains($"{Pages} pages", Assert.Throws<ArgumentOutOfRangeException>(() => pvm.PlacePage(Pages, page)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => pvm.ReadPage(-1, page));
        Assert.Throws<ArgumentException>(() => pvm.PlacePage(0, new byte[10]));
        Assert.Throws<ArgumentException>(() => pvm.ReadPage(0, new byte[10]));

        Assert.True(memory.TryTransition(5, PageResidency.Zero, PageResidency.Remote));
        Assert.Contains("Remote", Assert.Throws<InvalidOperationException>(() => pvm.ReadPage(5, page)).Message);
        using var mmu = new SoftwareMmu(memory, pvm);
        var fault = await Assert.ThrowsAsync<PageFaultException>(() => VcpuThread.Start(() =>
        {
            using var cpu = mmu.CreateVcpu();
            cpu.ReadUInt64(5 * Page.Size);
        }).WaitAsync(VcpuThread.Generous));
        Assert.Contains("Swapped pages only", fault.ToString());
    }

    [Fact]
    public async Task A_vm_outgrowing_share_and_a_full_swap_stops_its_vcpu_with_a_clear_error()
    {
        using var memory = new GuestMemory(Size);
        var options = Options(PagingMode.AsyncMethod1, share: 512);
        options.SwapPages = 256;
        await using var pvm = new PrivateVirtualMemory(memory, options);
        using var mmu = new SoftwareMmu(memory, pvm);
        long written = 0;
        var error = await Assert.ThrowsAnyAsync<Exception>(() => VcpuThread.Start(() =>
        {
            using var cpu = mmu.CreateVcpu();
            var buf = new byte[Page.Size];
            for (long p = 0; p < Pages; p++)
            {
                Fill(buf, p, 1);
                cpu.Write(p * Page.Size, buf);
                written = p + 1;
            }
        }).WaitAsync(VcpuThread.Generous));
        Assert.Contains("is full", error.ToString());
        Assert.True(written < Pages);
        var settle = await Assert.ThrowsAsync<InvalidOperationException>(() => pvm.SettleAsync().WaitAsync(VcpuThread.Generous));
        Assert.Contains("is full", settle.Message);
        // What was written before the failure is intact, in memory or in the one swap run (read-through takes
        // each chunk's lock, so a page-out still retrying in the background cannot tear a read).
        var page = new byte[Page.Size];
        for (long p = 0; p < written; p++)
        {
            pvm.ReadPage(p, page);
            AssertPage(page, p, 1);
        }
    }

    [Fact]
    public async Task A_full_private_swap_is_reported_and_corrupts_nothing()
    {
        using var memory = new GuestMemory(Size);
        var options = Options(PagingMode.AsyncMethod1, share: 512);
        options.SwapPages = 256;
        options.FreeReservePages = 0;
        await using var pvm = new PrivateVirtualMemory(memory, options);
        var buf = new byte[Page.Size];
        for (long p = 0; p < 512 + 256; p++)
        {
            Fill(buf, p, 1);
            pvm.PlacePage(p, buf);
        }
        Fill(buf, 800, 1);
        var ex = Assert.Throws<InvalidOperationException>(() => pvm.PlacePage(800, buf));
        Assert.Contains("full", ex.Message);
        Assert.Contains("SwapPages", ex.Message);
        Assert.Equal(PageResidency.Zero, memory.GetResidency(800));
        for (long p = 0; p < 512 + 256; p++)
        {
            pvm.ReadPage(p, buf);
            AssertPage(buf, p, 1);
        }
    }
}
