namespace MigrationFabric.Host.Tests;

using Google.Protobuf.WellKnownTypes;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Host.Api;

/// <summary>Pre-copy that cannot converge, through the public API: auto-converge engages; with it off the deadline fails cleanly.</summary>
public sealed class ConvergenceTests(TestCluster cluster) : IClassFixture<TestCluster>
{
    // Sequential writes over all memory as fast as the vCPU can: far more than a 8 MiB/s link carries.
    private static readonly Workload Sweeper = new() { Kind = WorkloadKind.MemoryBenchmark };

    [Fact]
    public async Task Without_auto_converge_the_deadline_fails_cleanly_and_the_vm_keeps_running_at_its_source()
    {
        await cluster.CreateVm("cv-noauto", "host-a", 16 << 20, Sweeper);
        await cluster.WarmUp("host-a", "cv-noauto", 2 * (16 << 20));
        var m = await cluster.Start("cv-noauto", "host-b", Strategy.PreCopy, new MigrationLimits
        {
            BandwidthBytesPerSecond = 8 << 20, DisableAutoConverge = true, MaxRounds = 1000,
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
        await cluster.CreateVm("cv-auto", "host-a", 16 << 20, Sweeper);
        await cluster.WarmUp("host-a", "cv-auto", 2 * (16 << 20));
        // Unthrottled, the sweep dirties GB/s, far beyond a 64 MiB/s link; at the highest throttle it dirties
        // about 1% of that, which the link carries: only auto-converge lets it finish.
        var m = await cluster.Start("cv-auto", "host-c", Strategy.PreCopy, new MigrationLimits
        {
            BandwidthBytesPerSecond = 64 << 20, MaxRounds = 1_000_000, Deadline = Duration.FromTimeSpan(TimeSpan.FromSeconds(80)),
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
