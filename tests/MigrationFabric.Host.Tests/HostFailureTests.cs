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
        // A hot set over all of memory, most pages written first (16,384 random writes over 8,192 pages): over 20 MiB beyond the cap's 4 MiB burst at 1 MiB/s, and
        // auto-converge off, so pre-copy is still in its first round when the destination dies. (A key-value guest
        // had too few non-zero pages: its first round fit the burst and, with its vCPU starved under load, the
        // migration could converge and complete before the kill.)
        await _cluster.CreateVm("hf-vm", "host-a", 32 << 20, ErrorStatusTests.NeverConverges);
        var source = _cluster.Cluster.Agent("host-a").Hypervisor.Find("hf-vm")!;
        await _cluster.WarmUp("host-a", "hf-vm", 2 * 8192);
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
        // Its guest keeps running.
        long before = source.Workload!.TotalOperations;
        await ErrorStatusTests.WaitUntil(() => source.Workload!.TotalOperations > before + 1000);
        Assert.False(source.Run.IsFaulted);
    }
}
