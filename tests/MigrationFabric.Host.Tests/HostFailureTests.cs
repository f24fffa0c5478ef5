namespace MigrationFabric.Host.Tests;

using MigrationFabric.Contracts.V1;
using MigrationFabric.Host.Api;

/// <summary>A destination agent dying mid pre-copy: the migration fails and the VM is intact at its source.</summary>
public sealed class HostFailureTests : IAsyncLifetime
{
    private readonly FastLivenessCluster _cluster = new();

    public Task InitializeAsync() => _cluster.InitializeAsync();

    public Task DisposeAsync() => _cluster.DisposeAsync();

    [Fact]
    public async Task Destination_killed_during_pre_copy_leaves_the_vm_running_and_intact_at_its_source()
    {
        await _cluster.CreateVm("hf-vm", "host-a", 32 << 20, new Workload { Kind = WorkloadKind.KeyValue, SetPercent = 20 });
        var source = _cluster.Cluster.Agent("host-a").Hypervisor.Find("hf-vm")!;
        await _cluster.WarmUp("host-a", "hf-vm", 50_000);
        // Its SETs keep the value pages dirty and auto-converge is off, so pre-copy is still running when the destination dies.
        var m = await _cluster.Start("hf-vm", "host-c", Strategy.PreCopy, ErrorStatusTests.Unfinishable);
        await _cluster.WaitForPhase(m.Id, MigrationPhase.PreCopy);

        await _cluster.Cluster.Agent("host-c").KillAsync();

        var final = (await _cluster.Watch(m.Id))[^1].Final;
        Assert.Equal(MigrationPhase.Failed, final.Phase);
        Assert.Contains("keeps running at the source", final.Error);
        var vm = await _cluster.Call(FabricContract.DescribeVm, new DescribeVmRequest { Name = "hf-vm" });
        Assert.Equal(("host-a", VmState.Running, ""), (vm.Host, vm.State, vm.MigrationId));
        Assert.Same(source, _cluster.Cluster.Agent("host-a").Hypervisor.Find("hf-vm"));
        Assert.False(source.IsPaused);
        // Its guest keeps running and every GET still returns what the last SET stored.
        var kv = (MigrationFabric.Memory.Workloads.KeyValueStoreWorkload)source.Workload!;
        long before = kv.Gets;
        await ErrorStatusTests.WaitUntil(() => kv.Gets > before + 1000);
        Assert.Equal(0, kv.CorruptReads);
        Assert.False(source.Run.IsFaulted);
    }
}
