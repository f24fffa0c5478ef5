namespace MigrationFabric.Host.Tests;

using MigrationFabric.Contracts.V1;
using MigrationFabric.Host.Grains;

/// <summary>A split main's loss report and the split's ending reach the VM's grain in either order; a stale report is not about the VM.</summary>
public sealed class MemoryLossRecordTests(TestCluster cluster) : IClassFixture<TestCluster>
{
    [Fact]
    public async Task A_loss_the_new_main_reports_before_the_splits_ending_lands_is_kept_and_a_stale_report_is_ignored()
    {
        await cluster.CreateVm("lr-vm", "host-a", 16UL << 20, new Workload { Kind = WorkloadKind.Idle });
        var grain = cluster.Cluster.Agent("host-a").Silo.GrainFactory.GetGrain<IVmGrain>("lr-vm");
        await grain.BeginMigration("m-split", "host-b");

        // The order of a sub-host dying right after switch-over: the new main's report lands, then the source's ending.
        await grain.ReportMemoryLost("m-split", "host-d", 5, "injected loss");
        await grain.EndSplitMigration("m-split", "host-b", ["host-c", "host-d"]);

        var record = await VmRecords.Of(cluster.Cluster, "lr-vm");
        Assert.Equal(("host-b", ""), (record.Host, record.MigrationId));
        Assert.Contains("sub-host 'host-d' is lost: 5 pages", record.MemoryError);
        Assert.Equal(5, record.LostPages);

        // A late report from the main of some other (earlier) split is not about the VM as it is now.
        await grain.ReportMemoryLost("m-older", "host-c", 7, "stale");
        record = await VmRecords.Of(cluster.Cluster, "lr-vm");
        Assert.Equal(5, record.LostPages);
        Assert.DoesNotContain("host-c", record.MemoryError);
    }
}
