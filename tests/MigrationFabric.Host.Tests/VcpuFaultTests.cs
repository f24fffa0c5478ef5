namespace MigrationFabric.Host.Tests;

using MigrationFabric.Contracts.V1;
using MigrationFabric.Host.Api;
using MigrationFabric.Host.Grains;
using MigrationFabric.Host.Hypervisor;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Rpc;

/// <summary>No vCPU stop is silent: whatever stops a running VM's vCPUs shows on DescribeVm and ListVms, and is recorded on the VM's grain.</summary>
public sealed class VcpuFaultTests : IAsyncLifetime
{
    private const ulong VmBytes = 16UL << 20;
    private static readonly Workload Sweeper = new() { Kind = WorkloadKind.MemoryBenchmark };

    private readonly FastLivenessCluster _cluster = new();

    public Task InitializeAsync() => _cluster.InitializeAsync();

    public Task DisposeAsync() => _cluster.DisposeAsync();

    /// <summary>A fault handler that fails every fault with an exception no pager would throw.</summary>
    private sealed class BrokenHandler : IPageFaultHandler
    {
        public ValueTask ResolveAsync(PageFault fault, CancellationToken cancellationToken) =>
            throw new InvalidOperationException($"injected failure at page {fault.Page.Value}");
    }

    /// <summary>Makes one of the running VM's pages fault into a handler that fails.</summary>
    private static void InjectFault(LocalVm vm)
    {
        vm.Mmu.FaultHandler = new BrokenHandler();
        var page = new PageNumber(vm.Memory.PageCount / 2);
        Assert.Equal(1, vm.Memory.BeginEviction(page, 1));
        vm.Memory.CompleteEviction(page, 1, PageResidency.Remote);
    }

    private Task<VmRecord> RecordOf(string vm) => VmRecords.Of(_cluster.Cluster, vm);

    private async Task<Vm> WhenFaulted(string name)
    {
        Vm vm = null!;
        await ErrorStatusTests.WaitUntil(() =>
        {
            try { vm = _cluster.Call(FabricContract.DescribeVm, new DescribeVmRequest { Name = name }).GetAwaiter().GetResult(); }
            catch (RpcException e) when (e.StatusCode == StatusCode.Unavailable) { return false; }
            return vm.State == VmState.Faulted;
        });
        return vm;
    }

    [Fact]
    public async Task A_vcpu_stopped_by_an_injected_fault_shows_on_describe_and_list_is_recorded_and_outlives_its_host()
    {
        await _cluster.CreateVm("vf-vm", "host-b", VmBytes, Sweeper);
        await _cluster.WarmUp("host-b", "vf-vm", (long)VmBytes);
        var local = _cluster.Cluster.Agent("host-b").Hypervisor.Find("vf-vm")!;

        InjectFault(local);

        var vm = await WhenFaulted("vf-vm");
        Assert.True(local.Run.IsFaulted);
        Assert.Contains("injected failure at page", vm.VcpuError);
        Assert.Contains("PageFaultException", vm.VcpuError);
        var listed = await _cluster.Call(FabricContract.ListVms, new ListVmsRequest());
        Assert.Equal(VmState.Faulted, listed.Vms.Single(v => v.Name == "vf-vm").State);
        // The host reported it to the VM's grain, which persisted it.
        VmRecord record = new();
        await ErrorStatusTests.WaitUntil(() => (record = RecordOf("vf-vm").GetAwaiter().GetResult()).VcpuError.Length > 0);
        Assert.Equal(("host-b", vm.VcpuError), (record.VcpuErrorHost, record.VcpuError));

        // Its host's agent dies: the VM's grain comes back elsewhere and still says why the vCPUs stopped.
        await _cluster.Cluster.Agent("host-b").KillAsync();
        var after = await WhenFaulted("vf-vm");
        Assert.Equal(vm.VcpuError, after.VcpuError);
    }

    [Fact]
    public async Task A_vcpu_that_stops_at_a_migrations_destination_is_recorded_for_that_host()
    {
        await _cluster.CreateVm("vf-moved", "host-b", VmBytes, Sweeper);
        await _cluster.WarmUp("host-b", "vf-moved", (long)VmBytes);
        var m = await _cluster.Start("vf-moved", "host-c", Strategy.PreCopy, new MigrationLimits { MaxRounds = 3 });
        var final = (await _cluster.Watch(m.Id))[^1].Final;
        Assert.True(final.Phase == MigrationPhase.Completed, final.Error);
        var moved = await _cluster.Call(FabricContract.DescribeVm, new DescribeVmRequest { Name = "vf-moved" });
        Assert.Equal(("host-c", VmState.Running, ""), (moved.Host, moved.State, moved.VcpuError));
        var local = _cluster.Cluster.Agent("host-c").Hypervisor.Find("vf-moved")!;
        await _cluster.WarmUp("host-c", "vf-moved", local.Workload!.TotalOperations + 1);

        InjectFault(local);

        var vm = await WhenFaulted("vf-moved");
        Assert.Contains("injected failure at page", vm.VcpuError);
        VmRecord record = new();
        await ErrorStatusTests.WaitUntil(() => (record = RecordOf("vf-moved").GetAwaiter().GetResult()).VcpuError.Length > 0);
        Assert.Equal(("host-c", "host-c"), (record.Host, record.VcpuErrorHost));
    }
}
