namespace MigrationFabric.Host.Tests;

using Google.Protobuf.WellKnownTypes;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Host.Api;

/// <summary>Pre-copy that cannot converge, through the public API: auto-converge engages; with it off the deadline fails cleanly.</summary>
public sealed class ConvergenceTests(TestCluster cluster) : IClassFixture<TestCluster>
{
    // 20 000 random page writes per second over all 4096 pages (~80 MB/s): far more than a 32 MiB/s link carries, and
    // a rate a shared machine sustains; throttled to 0.9 and beyond it dirties little enough to switch over.
    private static readonly Workload Hot = new() { Kind = WorkloadKind.HotSet, WorkingSetPercent = 100, DirtyPagesPerSecond = 20_000 };

    [Fact]
    public async Task Without_auto_converge_the_deadline_fails_cleanly_and_the_vm_keeps_running_at_its_source()
    {
        await cluster.CreateVm("cv-noauto", "host-a", 16 << 20, Hot);
        await cluster.WarmUp("host-a", "cv-noauto", 8192);
        var m = await cluster.Start("cv-noauto", "host-b", Strategy.PreCopy, new MigrationLimits
        {
            BandwidthBytesPerSecond = 32 << 20, DisableAutoConverge = true, MaxRounds = 1000,
            Deadline = Duration.FromTimeSpan(TimeSpan.FromSeconds(3)),
        });
        var events = await cluster.Watch(m.Id);
        var final = events[^1].Final;
        Assert.Equal(MigrationPhase.Failed, final.Phase);
        Assert.Contains("DEADLINE_EXCEEDED", final.Error);
        Assert.DoesNotContain(events, e => e.ThrottlePercent > 0);

        var vm = await cluster.Call(FabricContract.DescribeVm, new DescribeVmRequest { Name = "cv-noauto" });
        Assert.Equal(("host-a", VmState.Running, ""), (vm.Host, vm.State, vm.MigrationId));
        var local = cluster.Cluster.Agent("host-a").Hypervisor.Find("cv-noauto")!;
        long before = local.Workload!.TotalOperations;
        await ErrorStatusTests.WaitUntil(() => local.Workload.TotalOperations > before);
        await ErrorStatusTests.WaitUntil(() => cluster.Cluster.Agent("host-b").Hypervisor.Find("cv-noauto") is null);
        await cluster.Call(FabricContract.DeleteVm, new DeleteVmRequest { Name = "cv-noauto" });
    }

    [Fact]
    public async Task With_auto_converge_the_vcpus_are_throttled()
    {
        await cluster.CreateVm("cv-auto", "host-a", 16 << 20, Hot);
        await cluster.WarmUp("host-a", "cv-auto", 8192);
        var m = await cluster.Start("cv-auto", "host-c", Strategy.PreCopy, new MigrationLimits
        {
            BandwidthBytesPerSecond = 32 << 20, MaxRounds = 1_000_000, Deadline = Duration.FromTimeSpan(TimeSpan.FromSeconds(80)),
        });
        var events = await cluster.Watch(m.Id);
        Assert.Contains(events, e => e.ThrottlePercent > 0);
        var final = events[^1].Final;
        Assert.True(final.Phase == MigrationPhase.Completed, $"{final.Phase}: {final.Error}");
        Assert.Equal(0UL, final.Report.Integrity.MismatchedPages);
        // The throttle belongs to the source's vCPUs; at the destination the VM runs at full speed.
        Assert.Equal(0, cluster.Cluster.Agent("host-c").Hypervisor.Find("cv-auto")!.Mmu.Throttle);
        await cluster.Call(FabricContract.DeleteVm, new DeleteVmRequest { Name = "cv-auto" });
    }
}
