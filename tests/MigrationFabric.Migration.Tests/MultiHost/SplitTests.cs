using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Integrity;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Workloads;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.MultiHost;
using MigrationFabric.Migration.RemotePaging;
using MigrationFabric.Migration.Strategies;
using MigrationFabric.Migration.Tests.Support;

namespace MigrationFabric.Migration.Tests.MultiHost;

public class SplitTests
{
    private const long Mib = 1 << 20;
    private const long VmBytes = 32 * Mib; // 8192 pages
    private const long MainBudget = 2048;
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(60);
    private static int s_next;

    private sealed class Cluster : IAsyncDisposable
    {
        public required Agent Source { get; init; }
        public required Agent Main { get; init; }
        public required Agent Sub { get; init; }
        public required TestVm Vm { get; init; }
        public required TestVm Target { get; init; }
        public required GuestMemory SubMemory { get; init; }
        public required SplitMainHost MainHost { get; init; }
        public required IncomingMigration SubIncoming { get; init; }
        public required string Id { get; init; }

        public MigrationJob Job() => new() { MigrationId = Id, Vm = "vm-1", Memory = Vm.Memory, Mmu = Vm.Mmu, Destination = Main.Address, DestinationName = "main" };

        /// <summary>The VM as main and sub-host hold it together.</summary>
        public ulong Digest()
        {
            var vm = new Xxh64(0);
            for (long p = 0; p < Target.Memory.PageCount; p++)
                vm.AppendUInt64(Target.Memory.GetResidency(p) == PageResidency.Remote ? PageDigest.Of(SubMemory, p) : PageDigest.Of(Target.Memory, p));
            return vm.Digest();
        }

        public async ValueTask DisposeAsync()
        {
            Vm.Dispose();
            Target.Dispose();
            MainHost.Dispose();
            await Source.DisposeAsync();
            await Main.DisposeAsync();
            await Sub.DisposeAsync();
            SubMemory.Dispose();
        }
    }

    private static async Task<Cluster> CreateAsync()
    {
        string id = $"split-{Interlocked.Increment(ref s_next)}";
        var source = await Agent.StartAsync();
        var main = await Agent.StartAsync();
        var sub = await Agent.StartAsync();
        var target = new TestVm(VmBytes);
        var subMemory = new GuestMemory(VmBytes);
        var subIncoming = SplitSubHost.Accept(sub.Pages, id, "vm-1", subMemory);
        var mainHost = new SplitMainHost(id, "vm-1", target.Memory, target.Mmu, sub.Address, new RemotePagerOptions { BudgetPages = MainBudget + 512, Timeout = TimeSpan.FromSeconds(5) });
        main.Pages.Accept(mainHost.Incoming);
        return new Cluster
        {
            Source = source, Main = main, Sub = sub, Vm = new TestVm(VmBytes), Target = target, SubMemory = subMemory,
            MainHost = mainHost, SubIncoming = subIncoming, Id = id,
        };
    }

    [Fact]
    public async Task Split_to_a_main_and_one_sub_host_under_a_running_workload_then_pages_remotely_at_the_main()
    {
        await using var c = await CreateAsync();
        c.Vm.Fill(stride: 1);
        c.Vm.Start(new HotSetWorkload(new HotSetOptions { WorkingSetFraction = 0.2, TargetDirtyPagesPerSecond = 20_000 }));
        await c.Vm.WaitForProgressAsync(2_000, Long);

        var report = await new Split(new SplitOptions { SubHosts = [c.Sub.Address], MainBudgetPages = MainBudget, BandwidthCap = 128 * Mib })
            .RunAsync(c.Job()).WaitAsync(Long);

        await c.MainHost.Incoming.Completion.WaitAsync(Long);
        await c.SubIncoming.Completion.WaitAsync(Long);
        Assert.Equal("split", report.Strategy);
        Assert.Equal(c.Vm.Memory.PageCount, report.PagesVerified);
        Assert.Equal(2, report.BytesSentPerDestination.Count);
        Assert.True(report.BytesSentPerDestination[c.Sub.Address.Authority] > 4 * Mib, $"bytes to the sub-host: {report.BytesSentPerDestination[c.Sub.Address.Authority]}");
        Assert.True(c.Target.Memory.ResidentPages <= MainBudget + 512, $"main resident {c.Target.Memory.ResidentPages}");
        Assert.True(c.SubMemory.ResidentPages >= c.Vm.Memory.PageCount - MainBudget - 512, $"sub-host holds {c.SubMemory.ResidentPages}");
        Assert.Equal(c.Vm.Digest(), c.Digest());
        await c.Vm.StopWorkloadAsync();

        // The VM runs at the main now: its workload pages in from the sub-host and out to it.
        var workload = new HotSetWorkload(new HotSetOptions { WorkingSetFraction = 1.0, TargetDirtyPagesPerSecond = 20_000 });
        using var stop = new CancellationTokenSource();
        var running = workload.RunAsync(c.Target.Mmu, stop.Token);
        var deadline = DateTime.UtcNow + Long;
        while ((c.MainHost.Pager.PageOuts < 1024 || c.MainHost.Pager.PageIns < 1024) && DateTime.UtcNow < deadline && !running.IsCompleted) await Task.Delay(20);
        stop.Cancel();
        await WorkloadStop.WaitAsync(running, stop);
        Assert.True(c.MainHost.Pager.PageIns >= 1024 && c.MainHost.Pager.PageOuts >= 1024, $"page-ins {c.MainHost.Pager.PageIns}, page-outs {c.MainHost.Pager.PageOuts}");
        Assert.True(c.Target.Memory.ResidentPages <= MainBudget + 512);
        Assert.False(c.MainHost.Pager.Lost.IsCompleted);
    }

    [Fact]
    public async Task A_sub_host_killed_mid_migration_fails_it_by_name_and_the_vm_stays_at_the_source()
    {
        await using var c = await CreateAsync();
        c.Vm.Fill(stride: 1);
        ulong digest = c.Vm.Digest();
        var progressed = new TaskCompletionSource();
        var job = new MigrationJob
        {
            MigrationId = c.Id, Vm = "vm-1", Memory = c.Vm.Memory, Mmu = c.Vm.Mmu, Destination = c.Main.Address,
            Progress = new Progress(p => { if (p.BytesSent > 2 * Mib) progressed.TrySetResult(); }),
        };
        var run = new Split(new SplitOptions { SubHosts = [c.Sub.Address], MainBudgetPages = MainBudget, BandwidthCap = 8 * Mib, ProgressInterval = TimeSpan.FromMilliseconds(20) }).RunAsync(job);
        await progressed.Task.WaitAsync(Long);
        await c.Sub.KillAsync();

        var e = await Assert.ThrowsAsync<MigrationFailedException>(() => run.WaitAsync(Long));

        Assert.Contains("sub-host", e.Message);
        Assert.False(c.Vm.Mmu.IsPaused, "the VM keeps running at the source");
        Assert.Equal(digest, c.Vm.Digest());
        await Assert.ThrowsAsync<MigrationAbortedException>(() => c.MainHost.Incoming.Completion.WaitAsync(Long));
    }

    private sealed class Progress(Action<MigrationFabric.Migration.Reporting.MigrationProgress> action) : IProgress<MigrationFabric.Migration.Reporting.MigrationProgress>
    {
        public void Report(MigrationFabric.Migration.Reporting.MigrationProgress value) => action(value);
    }

    [Fact]
    public void Split_options_name_what_is_missing()
    {
        var e = Assert.Throws<ArgumentException>(() => new Split(new SplitOptions { MainBudgetPages = 10 }));
        Assert.Contains("SubHost", e.Message);
        e = Assert.Throws<ArgumentException>(() => new Split(new SplitOptions { SubHosts = [new Uri("http://127.0.0.1:1")] }));
        Assert.Contains("MainBudgetPages", e.Message);
    }
}
