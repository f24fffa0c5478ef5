namespace MigrationFabric.Host.Tests;

using MigrationFabric.Contracts.V1;
using MigrationFabric.Host.Agent;
using MigrationFabric.Host.Api;

/// <summary>A migration through the scheduler API carried by TCP data channels (the agents' default), and one where the agents chose gRPC.</summary>
public sealed class DataChannelMigrationTests(TestCluster cluster) : IClassFixture<TestCluster>
{
    [Fact]
    public async Task A_pre_copy_through_the_api_travels_on_tcp_data_channels_verified_and_reported()
    {
        await cluster.CreateVm("dc-vm1", "host-a", 16UL << 20, new Workload { Kind = WorkloadKind.KeyValue });
        await cluster.WarmUp("host-a", "dc-vm1", 500);
        var m = await cluster.Start("dc-vm1", "host-b", Strategy.PreCopy);
        var events = await cluster.Watch(m.Id);
        var final = events[^1].Final;
        Assert.Equal(MigrationPhase.Completed, final.Phase);

        var described = await cluster.Call(FabricContract.DescribeMigration, new DescribeMigrationRequest { MigrationId = m.Id });
        Assert.Equal(DataChannelKind.Tcp, described.Report.DataChannel);
        // The destination holds the whole VM in RAM, so it preallocated it at prepare (HostAgentOptions.PreallocateIncomingMemory's default).
        Assert.NotNull(described.Report.DestinationPreallocation);
        Assert.True(described.Report.DestinationPreallocation.ToTimeSpan() > TimeSpan.Zero);
        Assert.Equal(4096UL, described.Report.Integrity.PagesChecked);
        Assert.Equal(0UL, described.Report.Integrity.MismatchedPages);
        Assert.True(described.Report.BytesSent > 0);
        // The source closes its channels once the migration is done; the destination's read loops then end.
        var listener = cluster.Cluster.Agent("host-b").Pages.DataChannels!;
        var deadline = DateTime.UtcNow + TestCluster.Patience;
        while (listener.Connections > 0 && DateTime.UtcNow < deadline) await Task.Delay(20);
        Assert.Equal(0, listener.Connections);
        var vm = await cluster.Call(FabricContract.DescribeVm, new DescribeVmRequest { Name = "dc-vm1" });
        Assert.Equal("host-b", vm.Host);
        await cluster.Call(FabricContract.DeleteVm, new DeleteVmRequest { Name = "dc-vm1" });
    }
}

/// <summary>Two agents configured with HostAgentOptions.DataChannel = Grpc and without preallocating incoming memory.</summary>
public sealed class GrpcDataChannelCluster : TestCluster
{
    protected override EmbeddedClusterOptions ClusterOptions() =>
        new() { Hosts = 2, MemoryBudgetBytes = Budget, DataChannel = MigrationFabric.Migration.DataPlane.DataChannel.Grpc, PreallocateIncomingMemory = false };
}

/// <summary>The gRPC data channel stays selectable per agent and is reported as such; an agent told not to preallocate reports none.</summary>
public sealed class GrpcDataChannelMigrationTests(GrpcDataChannelCluster cluster) : IClassFixture<GrpcDataChannelCluster>
{
    [Fact]
    public async Task Agents_set_to_grpc_move_the_vm_on_pagestream_calls_and_report_grpc()
    {
        await cluster.CreateVm("dc-vm2", "host-a", 16UL << 20, new Workload { Kind = WorkloadKind.Idle });
        var m = await cluster.Start("dc-vm2", "host-b", Strategy.PreCopy);
        var events = await cluster.Watch(m.Id);
        Assert.Equal(MigrationPhase.Completed, events[^1].Final.Phase);
        var described = await cluster.Call(FabricContract.DescribeMigration, new DescribeMigrationRequest { MigrationId = m.Id });
        Assert.Equal(DataChannelKind.Grpc, described.Report.DataChannel);
        Assert.Null(described.Report.DestinationPreallocation);
        Assert.Equal(4096UL, described.Report.Integrity.PagesChecked);
    }
}
