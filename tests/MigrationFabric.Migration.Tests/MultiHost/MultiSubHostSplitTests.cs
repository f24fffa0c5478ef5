using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Integrity;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Workloads;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.MultiHost;
using MigrationFabric.Migration.RemotePaging;
using MigrationFabric.Migration.Reporting;
using MigrationFabric.Migration.Strategies;
using MigrationFabric.Migration.Tests.Support;

namespace MigrationFabric.Migration.Tests.MultiHost;

/// <summary>Split over a main host and two sub-hosts, real sockets, a 64 MiB VM.</summary>
public class MultiSubHostSplitTests
{
    private const long Mib = 1 << 20;
    private const long VmBytes = 64 * Mib; // 16384 pages
    private const long MainBudget = 4096;
    private const long PagerBudget = MainBudget + 512;
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(60);
    private static int s_next;

    private sealed class Cluster : IAsyncDisposable
    {
        public required Agent Source { get; init; }
        public required Agent Main { get; init; }
        public required Agent[] Subs { get; init; }
        public required TestVm Vm { get; init; }
        public required TestVm Target { get; init; }
        public required GuestMemory[] SubMemory { get; init; }
        public required SplitMainHost MainHost { get; init; }
        public required IncomingMigration[] SubIncoming { get; init; }
        public required string Id { get; init; }
        public List<MigrationProgress> Progress { get; } = [];

        public MigrationJob Job(Action<MigrationProgress>? onProgress = null) => new()
        {
            MigrationId = Id, Vm = "vm-1", Memory = Vm.Memory, Mmu = Vm.Mmu, Destination = Main.Address, DestinationName = "main",
            Progress = new Recorder(p => { lock (Progress) Progress.Add(p); onProgress?.Invoke(p); }),
        };

        public SplitOptions Options() => new() { SubHosts = [.. Subs.Select(s => s.Address)], MainBudgetPages = MainBudget, ProgressInterval = TimeSpan.FromMilliseconds(20) };

        /// <summary>The VM as the hosts hold it together: the main's copy where resident, else the copy of the sub-host the map names.</summary>
        public ulong Digest()
        {
            var map = MainHost.Pager.Map;
            var vm = new Xxh64(0);
            for (long p = 0; p < Target.Memory.PageCount; p++)
            {
                int host = map.HostOf(p);
                vm.AppendUInt64(Target.Memory.GetResidency(p) == PageResidency.Resident || host == MemoryMap.Main
                    ? PageDigest.Of(Target.Memory, p) : PageDigest.Of(SubMemory[host - 1], p));
            }
            return vm.Digest();
        }

        public async ValueTask DisposeAsync()
        {
            Vm.Dispose();
            Target.Dispose();
            MainHost.Dispose();
            await Source.DisposeAsync();
            await Main.DisposeAsync();
            foreach (var s in Subs) await s.DisposeAsync();
            foreach (var m in SubMemory) m.Dispose();
        }
    }

    private sealed class Recorder(Action<MigrationProgress> action) : IProgress<MigrationProgress>
    {
        public void Report(MigrationProgress value) => action(value);
    }

    private static async Task<Cluster> CreateAsync(int subHosts, int prefetch = 16)
    {
        string id = $"split-n-{Interlocked.Increment(ref s_next)}";
        var subs = new Agent[subHosts];
        var subMemory = new GuestMemory[subHosts];
        var subIncoming = new IncomingMigration[subHosts];
        for (int k = 0; k < subHosts; k++)
        {
            subs[k] = await Agent.StartAsync();
            subMemory[k] = new GuestMemory(VmBytes);
            subIncoming[k] = SplitSubHost.Accept(subs[k].Pages, id, "vm-1", subMemory[k]);
        }
        var main = await Agent.StartAsync();
        var target = new TestVm(VmBytes);
        var mainHost = new SplitMainHost(id, "vm-1", target.Memory, target.Mmu,
            new RemotePagerOptions { BudgetPages = PagerBudget, Prefetch = prefetch, Timeout = TimeSpan.FromSeconds(10) });
        main.Pages.Accept(mainHost.Incoming);
        return new Cluster
        {
            Source = await Agent.StartAsync(), Main = main, Subs = subs, Vm = new TestVm(VmBytes), Target = target, SubMemory = subMemory,
            MainHost = mainHost, SubIncoming = subIncoming, Id = id,
        };
    }

    private static async Task RunWorkloadAtMainAsync(Cluster c, Func<bool> enough)
    {
        var workload = new HotSetWorkload(new HotSetOptions { WorkingSetFraction = 1.0, TargetDirtyPagesPerSecond = 20_000, Vcpus = 2 });
        using var stop = new CancellationTokenSource();
        var running = workload.RunAsync(c.Target.Mmu, stop.Token);
        var deadline = DateTime.UtcNow + Long;
        while (!enough() && DateTime.UtcNow < deadline && !running.IsCompleted) await Task.Delay(20);
        stop.Cancel();
        await WorkloadStop.WaitAsync(running, stop);
    }

    private static void ReadEveryPage(SoftwareMmu mmu)
    {
        using var cpu = mmu.CreateVcpu();
        var buffer = new byte[Page.Size];
        for (long p = 0; p < mmu.Memory.PageCount; p++) cpu.Read(p << Page.Shift, buffer);
    }

    [Fact]
    public async Task Split_over_two_sub_hosts_under_a_running_workload_balances_them_verifies_every_host_and_pages_remotely()
    {
        await using var c = await CreateAsync(subHosts: 2);
        c.Vm.Fill(stride: 1);
        c.Vm.Start(new HotSetWorkload(new HotSetOptions { WorkingSetFraction = 0.2, TargetDirtyPagesPerSecond = 20_000 }));
        await c.Vm.WaitForProgressAsync(2_000, Long);

        var report = await new Split(c.Options()).RunAsync(c.Job()).WaitAsync(Long);

        await c.MainHost.Incoming.Completion.WaitAsync(Long);
        foreach (var s in c.SubIncoming) await s.Completion.WaitAsync(Long);
        Assert.Equal(c.Vm.Memory.PageCount, report.PagesVerified);
        Assert.Equal(3, report.BytesSentPerDestination.Count);
        long subPages = c.Vm.Memory.PageCount - MainBudget;
        long a = c.SubMemory[0].ResidentPages, b = c.SubMemory[1].ResidentPages;
        // Dealt in 1 MiB chunks, evenly: the two differ by at most a chunk.
        Assert.True(a + b >= subPages, $"sub-hosts hold {a} + {b}, expected at least {subPages}");
        Assert.True(Math.Abs(a - b) <= SplitPlan.ChunkPages, $"sub-hosts hold {a} and {b}: not balanced");
        foreach (var s in c.Subs)
            Assert.True(report.BytesSentPerDestination[s.Address.Authority] > 16 * Mib, $"bytes to {s.Address}: {report.BytesSentPerDestination[s.Address.Authority]}");
        // Progress named every host, with bytes to each sub-host while the pages streamed.
        MigrationProgress last;
        lock (c.Progress) last = c.Progress.Last(p => p.Destinations.Count == 3);
        Assert.Equal(DestinationRole.Destination, last.Destinations[0].Role);
        Assert.Equal(c.Main.Address.Authority, last.Destinations[0].Host);
        for (int k = 0; k < 2; k++)
        {
            Assert.Equal(DestinationRole.SubHost, last.Destinations[k + 1].Role);
            Assert.Equal(c.Subs[k].Address.Authority, last.Destinations[k + 1].Host);
            Assert.True(last.Destinations[k + 1].BytesSent > 0 && last.Destinations[k + 1].PlannedPages > 0);
        }
        Assert.Equal(last.Destinations.Sum(d => d.BytesSent), last.BytesSent);
        await c.Vm.StopWorkloadAsync();
        Assert.Equal(c.Vm.Digest(), c.Digest());

        // The VM runs at the main now: its workload pages in from both sub-hosts and out to them.
        var pager = c.MainHost.Pager;
        await RunWorkloadAtMainAsync(c, () => pager.PageOuts >= 2048 && pager.PageInsFrom(0) >= 512 && pager.PageInsFrom(1) >= 512);
        Assert.True(pager.PageInsFrom(0) > 0 && pager.PageInsFrom(1) > 0, $"page-ins {pager.PageInsFrom(0)} / {pager.PageInsFrom(1)}");
        Assert.True(pager.PageOutsTo(0) > 0 && pager.PageOutsTo(1) > 0, $"page-outs {pager.PageOutsTo(0)} / {pager.PageOutsTo(1)}");
        Assert.True(c.Target.Memory.ResidentPages <= PagerBudget, $"main resident {c.Target.Memory.ResidentPages}");
        Assert.False(pager.Lost.IsCompleted);
        ulong written = c.Digest();
        await VcpuThread.Start(() => ReadEveryPage(c.Target.Mmu)).WaitAsync(Long);
        Assert.Equal(written, c.Digest());
    }

    [Fact]
    public async Task A_second_sub_host_killed_before_switch_over_fails_the_migration_by_its_name_and_the_vm_stays_at_the_source()
    {
        await using var c = await CreateAsync(subHosts: 2);
        c.Vm.Fill(stride: 1);
        ulong digest = c.Vm.Digest();
        var progressed = new TaskCompletionSource();
        var options = c.Options();
        options.BandwidthCap = 8 * Mib;
        var run = new Split(options).RunAsync(c.Job(p => { if (p.Destinations.Count == 3 && p.Destinations[2].BytesSent > Mib) progressed.TrySetResult(); }));
        await progressed.Task.WaitAsync(Long);
        await c.Subs[1].KillAsync();

        var e = await Assert.ThrowsAsync<MigrationFailedException>(() => run.WaitAsync(Long));

        Assert.Contains("sub-host", e.Message);
        Assert.Contains(c.Subs[1].Address.Authority, e.ToString());
        Assert.False(c.Vm.Mmu.IsPaused, "the VM keeps running at the source");
        Assert.Equal(digest, c.Vm.Digest());
        await Assert.ThrowsAsync<MigrationAbortedException>(() => c.MainHost.Incoming.Completion.WaitAsync(Long));
        await Assert.ThrowsAsync<MigrationAbortedException>(() => c.SubIncoming[0].Completion.WaitAsync(Long));
        Assert.False(c.MainHost.IsResumed);
    }

    [Fact]
    public async Task A_sub_host_killed_after_switch_over_loses_only_its_pages_reported_with_their_count_and_the_other_keeps_serving()
    {
        await using var c = await CreateAsync(subHosts: 2);
        c.Vm.Fill(stride: 1);
        await new Split(c.Options()).RunAsync(c.Job()).WaitAsync(Long);
        var pager = c.MainHost.Pager;
        var map = pager.Map;
        long onB = map.PagesOn(2);
        Assert.True(onB > 0);

        await c.Subs[1].KillAsync();
        long firstOnB = Enumerable.Range(0, (int)map.PageCount).First(p => map.HostOf(p) == 2);
        var e = await Assert.ThrowsAnyAsync<Exception>(() => VcpuThread.Start(() =>
        {
            using var cpu = c.Target.Mmu.CreateVcpu();
            cpu.Read(firstOnB << Page.Shift, new byte[Page.Size]);
        }).WaitAsync(Long));

        var lost = await pager.Lost.WaitAsync(Long);
        Assert.Contains("lost", e.ToString());
        Assert.Equal(c.Subs[1].Address, lost.SubHost);
        Assert.Equal(onB, lost.PagesLost);
        Assert.NotNull(pager.LossOf(1));
        Assert.Null(pager.LossOf(0));
        // Every page not on the lost sub-host still reads as the source had it, paging through the other one.
        long outsToB = pager.PageOutsTo(1);
        await VcpuThread.Start(() =>
        {
            using var cpu = c.Target.Mmu.CreateVcpu();
            var buffer = new byte[Page.Size];
            for (long p = 0; p < map.PageCount; p++)
            {
                if (map.HostOf(p) == 2) continue;
                cpu.Read(p << Page.Shift, buffer);
                Assert.Equal(PageDigest.Of(c.Vm.Memory, p), PageDigest.Of(buffer));
            }
        }).WaitAsync(Long);
        Assert.True(pager.PageInsFrom(0) > 0);
        Assert.Equal(outsToB, pager.PageOutsTo(1));
        Assert.True(c.Target.Memory.ResidentPages <= PagerBudget);
    }

    [Fact]
    public async Task The_map_exported_at_the_main_re_creates_its_pager_after_a_restart_and_every_page_reads_back()
    {
        await using var c = await CreateAsync(subHosts: 2);
        c.Vm.Fill(stride: 1);
        await new Split(c.Options()).RunAsync(c.Job()).WaitAsync(Long);
        var pager = c.MainHost.Pager;
        // Some paging first, so the map is not the plan any more.
        await RunWorkloadAtMainAsync(c, () => pager.PageOuts >= 1024 && pager.PageIns >= 1024);
        var map = pager.Map;

        // The main agent restarts: its pager (and channels) go, guest memory and the sub-hosts stay. Disposing the main
        // waits for paging in flight (a fault a stopped vCPU gave up on may still be paging), so the map and the pages
        // are read below as the restarted pager finds them.
        c.MainHost.Dispose();
        c.Target.Mmu.FaultHandler = null;
        var expected = new ulong[c.Target.Memory.PageCount];
        for (long p = 0; p < expected.Length; p++)
        {
            int host = map.HostOf(p);
            expected[p] = c.Target.Memory.GetResidency(p) == PageResidency.Resident || host == MemoryMap.Main
                ? PageDigest.Of(c.Target.Memory, p) : PageDigest.Of(c.SubMemory[host - 1], p);
        }
        byte[] exported = map.Serialize();
        using var restored = new RemotePager("vm-1", c.Target.Memory, MemoryMap.Deserialize(exported), new RemotePagerOptions { BudgetPages = PagerBudget, Timeout = TimeSpan.FromSeconds(10) });
        c.Target.Mmu.FaultHandler = restored;

        await VcpuThread.Start(() =>
        {
            using var cpu = c.Target.Mmu.CreateVcpu();
            var buffer = new byte[Page.Size];
            for (long p = 0; p < expected.Length; p++)
            {
                cpu.Read(p << Page.Shift, buffer);
                Assert.True(expected[p] == PageDigest.Of(buffer), $"page {p} differs after the restart");
            }
        }).WaitAsync(Long);
        Assert.True(restored.PageIns > 0 && restored.PageOuts > 0, $"restored pager: in {restored.PageIns}, out {restored.PageOuts}");
        Assert.True(c.Target.Memory.ResidentPages <= PagerBudget);
        Assert.True(restored.Map.Version > MemoryMap.Deserialize(exported).Version);
    }
}
