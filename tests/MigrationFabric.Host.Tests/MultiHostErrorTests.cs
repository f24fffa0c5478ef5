namespace MigrationFabric.Host.Tests;

using MigrationFabric.Contracts.V1;
using MigrationFabric.Host.Api;
using MigrationFabric.Rpc;

/// <summary>Split, scatter-gather and VMemDirect requests that cannot be honoured get a clear status naming what was wrong, and leave nothing reserved or marked.</summary>
public sealed class MultiHostErrorTests(MultiHostCluster cluster) : IClassFixture<MultiHostCluster>
{
    private static readonly Workload Idle = new() { Kind = WorkloadKind.Idle };

    private async Task Refused(StatusCode code, StartMigrationRequest request, params string[] mentions)
    {
        var free = cluster.Cluster.Agents.Select(a => a.Hypervisor.FreeBytes).ToArray();
        var e = await cluster.Fails(FabricContract.StartMigration, request);
        Assert.Equal(code, e.StatusCode);
        foreach (var m in mentions) Assert.Contains(m, e.Status.Detail, StringComparison.OrdinalIgnoreCase);
        // Nothing reserved anywhere, and the VM is not marked as migrating.
        Assert.Equal(free, cluster.Cluster.Agents.Select(a => a.Hypervisor.FreeBytes).ToArray());
        Assert.All(cluster.Cluster.Agents, a => Assert.Empty(a.Held.Parts));
        var vm = await cluster.Call(FabricContract.DescribeVm, new DescribeVmRequest { Name = request.Vm });
        Assert.Equal(("host-a", VmState.Running, ""), (vm.Host, vm.State, vm.MigrationId));
    }

    private static StartMigrationRequest Request(string vm, string to, Strategy s, params string[] subs) =>
        new() { Vm = vm, Destination = to, Strategy = s, SubHosts = { subs } };

    [Fact]
    public async Task Sub_hosts_are_required_for_split_and_scatter_gather_and_forbidden_otherwise()
    {
        await cluster.CreateVm("me-1", "host-a", 64 << 20, Idle);
        await Refused(StatusCode.InvalidArgument, Request("me-1", "host-b", Strategy.Split), "sub_hosts is required for split");
        await Refused(StatusCode.InvalidArgument, Request("me-1", "host-c", Strategy.ScatterGather), "sub_hosts is required for scatter-gather");
        await Refused(StatusCode.InvalidArgument, Request("me-1", "host-c", Strategy.PreCopy, "host-d"), "sub_hosts are only for split and scatter-gather");
        await Refused(StatusCode.InvalidArgument, Request("me-1", "host-b", Strategy.VmemDirect, "host-d"), "not vmem-direct");
        await Refused(StatusCode.InvalidArgument, Request("me-1", "host-b", Strategy.Split, "host-c", "host-c"), "'host-c' twice");
        await Refused(StatusCode.InvalidArgument, Request("me-1", "host-b", Strategy.Split, "host-c", ""), "sub_hosts[1] is empty");
        await Refused(StatusCode.InvalidArgument, Request("me-1", "host-b", Strategy.Split, "host-b"), "'host-b' is the destination");
        await Refused(StatusCode.InvalidArgument, Request("me-1", "host-b", Strategy.Split, "host-a"), "'host-a', the source host");
        await Refused(StatusCode.InvalidArgument, Request("me-1", "host-b", Strategy.Split, [.. Enumerable.Range(0, 9).Select(i => $"h{i}")]), "at most 8");
        await Refused(StatusCode.NotFound, Request("me-1", "host-b", Strategy.Split, "host-z"), "'host-z'");
        await cluster.Call(FabricContract.DeleteVm, new DeleteVmRequest { Name = "me-1" });
    }

    [Fact]
    public async Task Room_is_checked_across_main_sub_hosts_and_intermediates()
    {
        // 1 GiB idle (its pages untouched take no RAM): a 24 MiB main plus one 512 MiB sub-host cannot hold it.
        await cluster.CreateVm("me-big", "host-a", 1UL << 30, Idle);
        await Refused(StatusCode.FailedPrecondition, Request("me-big", "host-b", Strategy.Split, "host-c"), "not enough room", "host-c");
        // Scatter-gather's destination must hold all of it.
        await Refused(StatusCode.FailedPrecondition, Request("me-big", "host-c", Strategy.ScatterGather, "host-b", "host-d"), "host-c", "holds all of it");
        await cluster.Call(FabricContract.DeleteVm, new DeleteVmRequest { Name = "me-big" });
        // 128 MiB: host-b (24 MiB) cannot hold its 64 MiB half as an intermediate.
        await cluster.CreateVm("me-128", "host-a", 128 << 20, Idle);
        await Refused(StatusCode.FailedPrecondition, Request("me-128", "host-c", Strategy.ScatterGather, "host-b", "host-d"), "intermediate 'host-b'", "64 MiB");
        await cluster.Call(FabricContract.DeleteVm, new DeleteVmRequest { Name = "me-128" });

        // A main that could hold the whole VM does not need a split.
        await cluster.CreateVm("me-2", "host-a", 64 << 20, Idle);
        await Refused(StatusCode.FailedPrecondition, Request("me-2", "host-c", Strategy.Split, "host-d"), "room for all", "pre-copy");
        await cluster.Call(FabricContract.DeleteVm, new DeleteVmRequest { Name = "me-2" });
    }

    [Fact]
    public async Task Vmem_direct_needs_a_destination_smaller_than_the_vm_with_some_room()
    {
        await cluster.CreateVm("me-3", "host-a", 64 << 20, Idle);
        await Refused(StatusCode.FailedPrecondition, Request("me-3", "host-c", Strategy.VmemDirect), "room for all", "use pre-copy");
        await Refused(StatusCode.FailedPrecondition, Request("me-3", "host-c", Strategy.NaiveSwap), "room for all");
        await Refused(StatusCode.FailedPrecondition, Request("me-3", "host-c", Strategy.VmemDevirtualize), "nothing to devirtualize");
        await Refused(StatusCode.InvalidArgument, new StartMigrationRequest
            { Vm = "me-3", Destination = "host-b", Strategy = Strategy.VmemDirect, Limits = new MigrationLimits { VmemPagingMethod = 3 } }, "vmem_paging_method");
        await Refused(StatusCode.InvalidArgument, new StartMigrationRequest
            { Vm = "me-3", Destination = "host-b", Strategy = Strategy.PreCopy, Limits = new MigrationLimits { VmemPagingMethod = 2 } }, "only for vmem-direct");
        // host-b full but 2 MiB: no room for any share.
        await cluster.CreateVm("me-filler", "host-b", (ulong)MultiHostCluster.Small - (2 << 20), Idle);
        await Refused(StatusCode.FailedPrecondition, Request("me-3", "host-b", Strategy.VmemDirect), "host-b", "no room");
        await cluster.Call(FabricContract.DeleteVm, new DeleteVmRequest { Name = "me-filler" });
        await cluster.Call(FabricContract.DeleteVm, new DeleteVmRequest { Name = "me-3" });
    }
}
