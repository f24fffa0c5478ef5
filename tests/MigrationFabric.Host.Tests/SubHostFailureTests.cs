namespace MigrationFabric.Host.Tests;

using MigrationFabric.Contracts.V1;
using MigrationFabric.Grains.Membership;
using MigrationFabric.Host.Agent;
using MigrationFabric.Host.Api;
using MigrationFabric.Rpc;

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

    [Fact]
    public async Task A_sub_host_lost_after_switch_over_is_reported_on_the_vm_with_the_pages_lost()
    {
        await _cluster.CreateVm("sf-after", "host-a", 64 << 20, new Workload { Kind = WorkloadKind.MemoryBenchmark });
        await _cluster.WarmUp("host-a", "sf-after", 64 << 20);
        var m = await _cluster.Start("sf-after", "host-b", Strategy.Split, new MigrationLimits { MaxRounds = 3 }, "host-c", "host-d");
        var final = (await _cluster.Watch(m.Id))[^1].Final;
        Assert.True(final.Phase == MigrationPhase.Completed, final.Error);
        var before = await _cluster.Call(FabricContract.DescribeVm, new DescribeVmRequest { Name = "sf-after" });
        ulong heldByD = before.RemoteShares.Single(s => s.Host == "host-d").Bytes;
        Assert.True(heldByD > 0);

        await _cluster.Cluster.Agent("host-d").KillAsync();

        // The sweeping guest soon faults on a page only host-d had: the main's pager reports the loss to the VM's grain.
        Vm vm = before;
        // The VM's grain may have been placed on host-d: until membership declares host-d dead, calls to it answer
        // UNAVAILABLE (retryable, as the API documents), then it reactivates elsewhere from storage.
        try
        {
            await ErrorStatusTests.WaitUntil(() =>
            {
                try
                {
                    vm = _cluster.Call(FabricContract.DescribeVm, new DescribeVmRequest { Name = "sf-after" }).GetAwaiter().GetResult();
                }
                catch (RpcException e) when (e.StatusCode == StatusCode.Unavailable)
                {
                    return false;
                }
                return vm.MemoryError.Length > 0;
            });
        }
        catch (Xunit.Sdk.XunitException)
        {
            // Was issue 6's silent loss (1 run in 4-8 under load): the report failed with a remote-wrapped routing error that
            // was not retried. Should it recur, say what the VM saw.
            var stopped = _cluster.Cluster.Agent("host-b").Hypervisor.Find("sf-after");
            Assert.Fail($"memory_error never set; the main's vCPU run is {stopped?.Run.Status}: {stopped?.Run.Exception?.InnerException}");
        }
        Assert.Contains("sub-host 'host-d' is lost", vm.MemoryError);
        Assert.True(vm.LostBytes > 0 && vm.LostBytes <= heldByD + (64UL << 20), $"lost {vm.LostBytes}, host-d held {heldByD}");
        var main = _cluster.Cluster.Agent("host-b").Hypervisor.Find("sf-after")!;
        // The vCPU that touched a lost page stopped with that error, not silently.
        await ErrorStatusTests.WaitUntil(() => main.Run.IsCompleted);
        Assert.True(main.Run.IsFaulted);
        Assert.Contains("lost", main.Run.Exception!.ToString());
        // And the API says so: the VM is FAULTED with the vCPUs' error, which names the loss (a lost page, or a page-out
        // with no room left once host-d's share is gone: "no sub-host has room ... lost: <host-d>").
        var faulted = await _cluster.Call(FabricContract.DescribeVm, new DescribeVmRequest { Name = "sf-after" });
        Assert.Equal(VmState.Faulted, faulted.State);
        Assert.StartsWith("PageFaultException: ", faulted.VcpuError);
        Assert.Contains("lost", faulted.VcpuError);
    }

    [Fact]
    public async Task The_split_vms_memory_map_outlives_its_main_host_agent_in_the_vm_grain()
    {
        await _cluster.CreateVm("sf-map", "host-a", 40 << 20, new Workload { Kind = WorkloadKind.MemoryBenchmark });
        await _cluster.WarmUp("host-a", "sf-map", 40 << 20);
        var m = await _cluster.Start("sf-map", "host-b", Strategy.Split, new MigrationLimits { MaxRounds = 3 }, "host-c", "host-d");
        var final = (await _cluster.Watch(m.Id))[^1].Final;
        Assert.True(final.Phase == MigrationPhase.Completed, final.Error);
        var grains = _cluster.Cluster.Agent("host-a").Silo.GrainFactory;
        var vmGrain = grains.GetGrain<MigrationFabric.Host.Grains.IVmGrain>("sf-map");
        await ErrorStatusTests.WaitUntil(() => vmGrain.MemoryMap().GetAwaiter().GetResult().Length > 0);

        // The main host's agent dies: the VM's grain (placed there) comes back elsewhere from grain storage, map included.
        await _cluster.Cluster.Agent("host-b").KillAsync();

        byte[] persisted = [];
        await ErrorStatusTests.WaitUntil(() =>
        {
            try { persisted = vmGrain.MemoryMap().GetAwaiter().GetResult(); return persisted.Length > 0; }
            catch (Exception) { return false; }
        });
        var map = MigrationFabric.Migration.MultiHost.MemoryMap.Deserialize(persisted);
        Assert.Equal(40L << 20 >> 12, map.PageCount);
        Assert.True(map.PagesOn(1) > 0 && map.PagesOn(2) > 0, "both sub-hosts hold pages by the persisted map");
        Vm vm = null!;
        await ErrorStatusTests.WaitUntil(() =>
        {
            try { vm = _cluster.Call(FabricContract.DescribeVm, new DescribeVmRequest { Name = "sf-map" }).GetAwaiter().GetResult(); return true; }
            catch (Exception) { return false; }
        });
        // The main cannot answer, so the shares come from the persisted map.
        Assert.Equal(["host-c", "host-d"], vm.RemoteShares.Select(s => s.Host));
        Assert.Equal((ulong)(map.PagesOn(1) * 4096), vm.RemoteShares[0].Bytes);
    }
}
