namespace MigrationFabric.Host.Tests;

using MigrationFabric.Contracts.V1;
using MigrationFabric.Host.Api;

/// <summary>Happy paths of the scheduler API through our own RpcChannel against three real agents.</summary>
public sealed class SchedulerApiTests(TestCluster cluster) : IClassFixture<TestCluster>
{
    [Fact]
    public async Task ListHosts_returns_every_agent_with_its_endpoint_and_budget()
    {
        var hosts = await cluster.Call(FabricContract.ListHosts, new ListHostsRequest());
        Assert.Equal(["host-a", "host-b", "host-c"], hosts.Hosts.Select(h => h.Name));
        foreach (var h in hosts.Hosts)
        {
            Assert.Equal((ulong)TestCluster.Budget, h.MemoryBudgetBytes);
            Assert.Equal(HostStatus.Active, h.Status);
            Assert.Equal(cluster.Cluster.Agent(h.Name).Endpoint, new Uri(h.Endpoint));
        }
    }

    [Fact]
    public async Task A_vm_is_created_listed_described_and_removed_from_any_agent()
    {
        var created = await cluster.CreateVm("api-vm1", "host-b", 32UL << 20, new Workload { Kind = WorkloadKind.KeyValue });
        Assert.Equal("host-b", created.Host);
        Assert.Equal(VmState.Running, created.State);
        Assert.True(cluster.Cluster.Agent("host-b").Hypervisor.Find("api-vm1") is not null);

        var host = await cluster.Call(FabricContract.DescribeHost, new DescribeHostRequest { Name = "host-b" });
        Assert.Contains("api-vm1", host.Vms);

        var listed = await cluster.Call(FabricContract.ListVms, new ListVmsRequest { Host = "host-b" });
        Assert.Contains(listed.Vms, v => v.Name == "api-vm1" && v.MemoryBytes == 32UL << 20 && v.Workload.Kind == WorkloadKind.KeyValue);
        var onC = await cluster.Call(FabricContract.ListVms, new ListVmsRequest { Host = "host-c" });
        Assert.DoesNotContain(onC.Vms, v => v.Name == "api-vm1");

        var described = await cluster.Call(FabricContract.DescribeVm, new DescribeVmRequest { Name = "api-vm1" });
        Assert.True(described.ResidentBytes > 0, "the key-value store writes its table and values, so pages are resident");

        var deleted = await cluster.Call(FabricContract.DeleteVm, new DeleteVmRequest { Name = "api-vm1" });
        Assert.Equal(32UL << 20, deleted.FreedBytes);
        Assert.Null(cluster.Cluster.Agent("host-b").Hypervisor.Find("api-vm1"));
        var gone = await cluster.Fails(FabricContract.DescribeVm, new DescribeVmRequest { Name = "api-vm1" });
        Assert.Equal(Rpc.StatusCode.NotFound, gone.StatusCode);
    }

    [Fact]
    public async Task A_migration_is_listed_and_described_with_its_report()
    {
        await cluster.CreateVm("api-vm2", "host-a", 16UL << 20, new Workload { Kind = WorkloadKind.Idle });
        var m = await cluster.Start("api-vm2", "host-c", Strategy.PreCopy);
        Assert.Equal("host-a", m.Source);
        Assert.Equal(4u, m.Request.Limits.Streams);
        Assert.Equal(TimeSpan.FromMilliseconds(300), m.Request.Limits.DowntimeTarget.ToTimeSpan());
        var events = await cluster.Watch(m.Id);
        Assert.Equal(MigrationPhase.Completed, events[^1].Final.Phase);

        var described = await cluster.Call(FabricContract.DescribeMigration, new DescribeMigrationRequest { MigrationId = m.Id });
        Assert.Equal(MigrationPhase.Completed, described.Phase);
        Assert.Equal(4096UL, described.Report.Integrity.PagesChecked);
        var listed = await cluster.Call(FabricContract.ListMigrations, new ListMigrationsRequest { Vm = "api-vm2" });
        Assert.Equal(m.Id, Assert.Single(listed.Migrations).Id);
        var vm = await cluster.Call(FabricContract.DescribeVm, new DescribeVmRequest { Name = "api-vm2" });
        Assert.Equal("host-c", vm.Host);
        await cluster.Call(FabricContract.DeleteVm, new DeleteVmRequest { Name = "api-vm2" });
    }
}
