namespace MigrationFabric.Host.Tests;

using MigrationFabric.Contracts.V1;
using MigrationFabric.Grains.Membership;
using MigrationFabric.Host.Agent;
using MigrationFabric.Host.Api;

/// <summary>A split sub-host killed mid-migration: reported by name, the VM intact at its source, nothing left reserved.</summary>
public sealed class SubHostFailureTests : IAsyncLifetime
{
    private sealed class Cluster : MultiHostCluster
    {
        protected override MembershipOptions? Membership => EmbeddedCluster.FastMembership();
    }

    private readonly Cluster _cluster = new();

    public Task InitializeAsync() => _cluster.InitializeAsync();

    public Task DisposeAsync() => _cluster.DisposeAsync();

    [Fact]
    public async Task A_sub_host_killed_during_a_split_fails_it_by_name_and_the_vm_stays_at_its_source()
    {
        // It writes every page, so the sub-hosts get their part from the first round on.
        await _cluster.CreateVm("sf-vm", "host-a", 64 << 20, new Workload { Kind = WorkloadKind.MemoryBenchmark });
        var source = _cluster.Cluster.Agent("host-a").Hypervisor.Find("sf-vm")!;
        await _cluster.WarmUp("host-a", "sf-vm", 64 << 20);
        // 2 MiB/s: the first round alone takes seconds, so the sub-host dies mid pre-copy.
        var m = await _cluster.Start("sf-vm", "host-b", Strategy.Split, new MigrationLimits { BandwidthBytesPerSecond = 2 << 20 }, "host-c", "host-d");
        await _cluster.WaitForPhase(m.Id, MigrationPhase.PreCopy);

        await _cluster.Cluster.Agent("host-d").KillAsync();

        var events = await _cluster.Watch(m.Id);
        var final = events[^1].Final;
        Assert.Equal(MigrationPhase.Failed, final.Phase);
        Assert.Contains("'host-d'", final.Error);
        Assert.Contains("sub-host", final.Error);
        var vm = await _cluster.Call(FabricContract.DescribeVm, new DescribeVmRequest { Name = "sf-vm" });
        Assert.Equal(("host-a", VmState.Running, ""), (vm.Host, vm.State, vm.MigrationId));
        Assert.Same(source, _cluster.Cluster.Agent("host-a").Hypervisor.Find("sf-vm"));
        Assert.False(source.IsPaused);
        long ops = source.Workload!.TotalOperations;
        await ErrorStatusTests.WaitUntil(() => source.Workload!.TotalOperations > ops + (8 << 20));
        Assert.False(source.Run.IsFaulted);
        // The main and the surviving sub-host let go of what they had reserved.
        await ErrorStatusTests.WaitUntil(() => _cluster.Free("host-b") == MultiHostCluster.Small && _cluster.Free("host-c") == TestCluster.Budget);
        Assert.Null(_cluster.Cluster.Agent("host-b").Hypervisor.Find("sf-vm"));
        Assert.Empty(_cluster.Cluster.Agent("host-c").Held.Parts);
    }
}
