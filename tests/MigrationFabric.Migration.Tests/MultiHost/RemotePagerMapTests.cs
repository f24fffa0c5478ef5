using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Integrity;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Migration.MultiHost;
using MigrationFabric.Migration.RemotePaging;
using MigrationFabric.Migration.Tests.Support;

namespace MigrationFabric.Migration.Tests.MultiHost;

/// <summary>The main host's pager over two sub-hosts set up by hand (no migration): prefetch, the map's consistency rule, adoption after a restart.</summary>
public class RemotePagerMapTests
{
    private const long Mib = 1 << 20;
    private const long VmBytes = 16 * Mib; // 4096 pages
    private const long Budget = 1024;
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(60);

    private sealed class Hosts : IAsyncDisposable
    {
        public required Agent[] Subs { get; init; }
        public required GuestMemory Main { get; init; }
        public required GuestMemory[] SubMemory { get; init; }
        public required RemotePageStore[] Stores { get; init; }
        public required MemoryMap Map { get; init; }
        public required byte[][] Original { get; init; }

        public async ValueTask DisposeAsync()
        {
            Main.Dispose();
            foreach (var m in SubMemory) m.Dispose();
            foreach (var s in Subs) await s.DisposeAsync();
        }
    }

    /// <summary>The first <see cref="Budget"/> pages at the main; the rest in 64-page runs alternating between the sub-hosts; the last 64 pages never written (main-owned zeroes).</summary>
    private static async Task<Hosts> CreateAsync()
    {
        var subs = new[] { await Agent.StartAsync(), await Agent.StartAsync() };
        var main = new GuestMemory(VmBytes);
        var subMemory = new[] { new GuestMemory(VmBytes), new GuestMemory(VmBytes) };
        var map = new MemoryMap(main.PageCount, [subs[0].Address, subs[1].Address]);
        var original = new byte[main.PageCount][];
        var rng = new Random(5);
        long written = main.PageCount - 64;
        for (long p = 0; p < main.PageCount; p++)
        {
            var bytes = new byte[Page.Size];
            if (p < written)
            {
                rng.NextBytes(bytes.AsSpan(0, 64));
                BitConverter.TryWriteBytes(bytes.AsSpan(64), p);
            }
            original[p] = bytes;
            if (p >= written) continue;
            if (p < Budget) Assert.True(main.TryInstall(p, PageResidency.Zero, bytes));
            else
            {
                int host = 1 + (int)((p / 64) % 2);
                Assert.True(subMemory[host - 1].TryInstall(p, PageResidency.Zero, bytes));
                map.Assign(p, host);
            }
        }
        var stores = new[] { subs[0].Pages.Hold(new RemotePageStore("vm-1", subMemory[0])), subs[1].Pages.Hold(new RemotePageStore("vm-1", subMemory[1])) };
        return new Hosts { Subs = subs, Main = main, SubMemory = subMemory, Stores = stores, Map = map, Original = original };
    }

    private static RemotePagerOptions Options(int prefetch = 16) => new() { BudgetPages = Budget, Prefetch = prefetch, Timeout = TimeSpan.FromSeconds(10) };

    private static void ReadAndCheck(SoftwareMmu mmu, byte[][] original, IEnumerable<long> pages)
    {
        using var cpu = mmu.CreateVcpu();
        var buffer = new byte[Page.Size];
        foreach (long p in pages)
        {
            cpu.Read(p << Page.Shift, buffer);
            Assert.True(buffer.AsSpan().SequenceEqual(original[p]), $"page {p} differs");
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(16)]
    public async Task A_sequential_sweep_reads_every_page_right_with_and_without_prefetch_within_the_budget(int prefetch)
    {
        await using var h = await CreateAsync();
        long onA = h.Map.PagesOn(1), onB = h.Map.PagesOn(2);
        using var pager = new RemotePager("vm-1", h.Main, h.Map, Options(prefetch));
        using var mmu = new SoftwareMmu(h.Main, pager);

        await VcpuThread.Start(() => ReadAndCheck(mmu, h.Original, Enumerable.Range(0, (int)h.Main.PageCount).Select(p => (long)p))).WaitAsync(Long);

        Assert.True(h.Main.ResidentPages <= Budget, $"resident {h.Main.ResidentPages}");
        // Every sub-host page came in once, from the sub-host holding it (prefetch never crosses to the other).
        Assert.Equal(onA, pager.PageInsFrom(0));
        Assert.Equal(onB, pager.PageInsFrom(1));
        Assert.Equal(64, pager.ZeroFills);
        if (prefetch == 0) Assert.Equal(0, pager.PagesPrefetched);
        else
        {
            // Runs of 64 pages per sub-host: each fault brings its page and the next 16 of the run.
            Assert.True(pager.PagesPrefetched >= (onA + onB) / 2, $"prefetched {pager.PagesPrefetched} of {onA + onB}");
            Assert.True(h.Stores[0].PagesServed + h.Stores[1].PagesServed == onA + onB);
        }
        Assert.True(pager.PageOuts > 0);
        Assert.Equal(pager.PageOutsTo(0), h.Stores[0].PagesStored);
        Assert.Equal(pager.PageOutsTo(1), h.Stores[1].PagesStored);
        // Reading back (every third page, backwards: pages now also on the other sub-host after page-outs) gives the same bytes.
        await VcpuThread.Start(() => ReadAndCheck(mmu, h.Original, Enumerable.Range(0, (int)h.Main.PageCount / 3).Select(i => h.Main.PageCount - 1 - 3L * i))).WaitAsync(Long);
    }

    [Fact]
    public async Task Prefetch_does_not_overwrite_a_page_written_at_the_main_meanwhile()
    {
        await using var h = await CreateAsync();
        using var pager = new RemotePager("vm-1", h.Main, h.Map, Options(prefetch: 16));
        using var mmu = new SoftwareMmu(h.Main, pager);
        long first = Budget; // start of a sub-host run
        var mine = new byte[Page.Size];
        mine.AsSpan().Fill(0xAB);
        await VcpuThread.Start(() =>
        {
            using var cpu = mmu.CreateVcpu();
            // Page first+3 is faulted in and rewritten here before first's fault would prefetch it.
            cpu.Write((first + 3) << Page.Shift, mine);
            var buffer = new byte[Page.Size];
            cpu.Read(first << Page.Shift, buffer);
            Assert.True(buffer.AsSpan().SequenceEqual(h.Original[first]));
            cpu.Read((first + 3) << Page.Shift, buffer);
            Assert.True(buffer.AsSpan().SequenceEqual(mine), "prefetch replaced a page the main had written");
        }).WaitAsync(Long);
    }

    [Fact]
    public async Task The_map_names_the_sub_host_before_the_main_frees_a_paged_out_page_and_a_failed_record_keeps_the_pages_here()
    {
        await using var h = await CreateAsync();
        long evictingWhenRecorded = -1;
        long versionSeen = -1;
        var options = Options();
        options.MapChanged = (map, _) =>
        {
            // The pages just stored are the sub-host's in the map and still held here (Evicting) until this returns.
            long n = 0;
            for (long p = 0; p < Budget; p++)
                if (h.Main.GetResidency(p) == PageResidency.Evicting && map.HostOf(p) != MemoryMap.Main) n++;
            Interlocked.Exchange(ref evictingWhenRecorded, n);
            versionSeen = map.Version;
            return ValueTask.CompletedTask;
        };
        using (var pager = new RemotePager("vm-1", h.Main, h.Map, options))
        using (var mmu = new SoftwareMmu(h.Main, pager))
        {
            await VcpuThread.Start(() => ReadAndCheck(mmu, h.Original, [Budget + 100])).WaitAsync(Long);
            Assert.True(pager.PageOuts > 0);
            Assert.Equal(pager.PageOuts, Interlocked.Read(ref evictingWhenRecorded));
            Assert.True(versionSeen > 0);
        }

        // A map that cannot be recorded: the page-out is undone, the pages stay here, the fault says why.
        await using var h2 = await CreateAsync();
        var failing = Options();
        failing.MapChanged = (_, _) => throw new IOException("grain storage unavailable");
        using var pager2 = new RemotePager("vm-1", h2.Main, h2.Map, failing);
        using var mmu2 = new SoftwareMmu(h2.Main, pager2);
        long resident = h2.Main.ResidentPages;
        var e = await Assert.ThrowsAnyAsync<Exception>(() => VcpuThread.Start(() => ReadAndCheck(mmu2, h2.Original, [Budget + 100])).WaitAsync(Long));
        Assert.Contains("memory map could not be recorded", e.ToString());
        Assert.Equal(resident, h2.Main.ResidentPages);
        Assert.Equal(Budget, h2.Map.PagesOn(MemoryMap.Main) - 64);
        Assert.Equal(0, h2.Main.CountOf(PageResidency.Evicting));
        Assert.Equal(0, pager2.PageOuts);
    }

    [Fact]
    public async Task A_pager_re_created_from_the_map_finishes_or_undoes_a_page_out_cut_short_and_refetches_a_cut_page_in()
    {
        await using var h = await CreateAsync();
        // What a main agent dying mid-paging leaves: page 10 stored at sub-host 1 and named there, not yet freed;
        // page 11 claimed for a page-out the map never recorded; page 2000 claimed for a page-in not finished.
        h.SubMemory[0].TryInstall(10, PageResidency.Zero, h.Original[10]);
        h.Map.Move(10, 1);
        Assert.Equal(1, h.Main.BeginEviction(10, 1));
        Assert.Equal(1, h.Main.BeginEviction(11, 1));
        Assert.True(h.Main.TryTransition(2000, PageResidency.Zero, PageResidency.Remote));
        Assert.False(h.Main.BeginInstall(2000, PageResidency.Remote).IsEmpty);
        var restored = MemoryMap.Deserialize(h.Map.Serialize());

        using var pager = new RemotePager("vm-1", h.Main, restored, Options());
        using var mmu = new SoftwareMmu(h.Main, pager);

        Assert.Equal(PageResidency.Remote, h.Main.GetResidency(10));
        Assert.Equal(PageResidency.Resident, h.Main.GetResidency(11));
        Assert.Equal(PageResidency.Remote, h.Main.GetResidency(2000));
        await VcpuThread.Start(() => ReadAndCheck(mmu, h.Original, [10, 11, 2000, h.Main.PageCount - 1])).WaitAsync(Long);
        Assert.Equal(MemoryMap.Main, restored.HostOf(10));
    }
    [Fact]
    public async Task Dispose_waits_for_paging_in_flight_and_a_fault_that_comes_later_is_refused_without_paging()
    {
        await using var h = await CreateAsync();
        var pager = new RemotePager("vm-1", h.Main, h.Map, Options());
        long page = Budget;
        Assert.Equal(PageResidency.Remote, h.Main.GetResidency(page));
        Assert.NotEqual(MemoryMap.Main, h.Map.HostOf(page));

        // Paging in flight (held here): Dispose waits for it.
        var hold = pager.HoldPaging();
        var disposing = Task.Run(pager.Dispose);
        await Task.Delay(200);
        Assert.False(disposing.IsCompleted, "Dispose returned while paging was in flight");
        hold.Dispose();
        await disposing.WaitAsync(Long);

        // A fault a stopped vCPU gave up on, reaching the pager only now: refused, nothing paged in.
        var e = await Assert.ThrowsAsync<PageFaultException>(() =>
            pager.ResolveAsync(new PageFault(h.Main, page, PageResidency.Remote, PageAccess.Read, 0), CancellationToken.None).AsTask().WaitAsync(Long));
        Assert.Contains("disposed", e.Message);
        Assert.Equal(PageResidency.Remote, h.Main.GetResidency(page));
        Assert.Throws<ObjectDisposedException>(() => pager.HoldPaging());
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await pager.HoldPagingAsync());
        pager.Dispose();
    }

    [Fact]
    public async Task A_probe_finds_a_dead_sub_host_before_any_fault_and_reports_the_pages_only_it_held()
    {
        await using var h = await CreateAsync();
        long onB = h.Map.PagesOn(2);
        using var pager = new RemotePager("vm-1", h.Main, h.Map, Options());
        using var mmu = new SoftwareMmu(h.Main, pager);
        Assert.Empty(await pager.ProbeAsync().WaitAsync(Long));
        Assert.False(pager.Lost.IsCompleted);

        await h.Subs[1].KillAsync();

        Assert.Equal([1], await pager.ProbeAsync().WaitAsync(Long));
        var lost = await pager.Lost.WaitAsync(Long);
        Assert.Equal(onB, lost.PagesLost);
        Assert.Equal(h.Subs[1].Address, lost.SubHost);
        // Sub-host 0 still serves its pages; a page of sub-host 1 stops the vCPU with the loss.
        await VcpuThread.Start(() => ReadAndCheck(mmu, h.Original, [Budget, Budget + 1])).WaitAsync(Long);
        var e = await Assert.ThrowsAnyAsync<Exception>(() => VcpuThread.Start(() => ReadAndCheck(mmu, h.Original, [Budget + 64])).WaitAsync(Long));
        Assert.Contains("lost", e.ToString());
    }
}
