namespace MigrationFabric.Host.Tests;

using MigrationFabric.Contracts.V1;
using MigrationFabric.Host.Agent;
using MigrationFabric.Host.Api;
using MigrationFabric.Host.Grains;
using MigrationFabric.Migration.MultiHost;

/// <summary>Four hosts: a large source (host-a), a small host (host-b, 24 MiB: below the test VMs. 40 MiB) and two large ones (host-c, host-d).</summary>
public class MultiHostCluster : TestCluster
{
    public const long Small = 24L << 20;

    protected override EmbeddedClusterOptions ClusterOptions() => new()
    {
        Hosts = 4, MemoryBudgetBytes = Budget, Membership = Membership,
        HostBudgetsBytes = [2L << 30, Small, Budget, Budget],
    };

    /// <summary>Budget not reserved on a host.</summary>
    public long Free(string host) => Cluster.Agent(host).Hypervisor.FreeBytes;
}

/// <summary>Split, scatter-gather and VMemDirect through the public API, each ending with the integrity check across every host holding pages.</summary>
public sealed class MultiHostMigrationTests(MultiHostCluster cluster) : IClassFixture<MultiHostCluster>
{
    private const ulong VmBytes = 40UL << 20;
    private const ulong VmPages = VmBytes / 4096;

    /// <summary>Writes every page of the VM again and again (its throughput is bytes/s).</summary>
    private static readonly Workload Sweeper = new() { Kind = WorkloadKind.MemoryBenchmark };

    /// <summary>The sweeper never converges: a few rounds, then switch over (the test is about where pages land, not downtime).</summary>
    private static MigrationLimits FewRounds => new() { MaxRounds = 3, DisableAutoConverge = true };

    private static void Verified(Migration final)
    {
        Assert.True(final.Phase == MigrationPhase.Completed, $"{final.Phase}: {final.Error}");
        Assert.Equal(VmPages, final.Report.Integrity.PagesChecked);
        Assert.Equal(0UL, final.Report.Integrity.MismatchedPages);
        Assert.NotEqual(0UL, final.Report.Integrity.VmDigest);
    }

    [Fact]
    public async Task Split_to_a_small_main_and_two_sub_hosts_runs_the_vm_at_the_main_with_the_rest_remote()
    {
        await cluster.CreateVm("mh-split", "host-a", VmBytes, Sweeper);
        // One sweep over all memory: every page is written, so every page has a place in the plan.
        await cluster.WarmUp("host-a", "mh-split", (long)VmBytes);
        long freeC = cluster.Free("host-c"), freeD = cluster.Free("host-d");

        var m = await cluster.Start("mh-split", "host-b", Strategy.Split, FewRounds, "host-c", "host-d");
        Assert.Equal(["host-c", "host-d"], m.Request.SubHosts);
        var events = await cluster.Watch(m.Id);

        var final = events[^1].Final;
        Verified(final);
        // A split main holds a share paged by its pager, not the whole VM: nothing is preallocated.
        Assert.Null(final.Report.DestinationPreallocation);
        var rows = final.Report.PerDestination.ToDictionary(d => d.Host);
        Assert.Equal(["host-b", "host-c", "host-d"], rows.Keys.Order());
        Assert.Equal(("main", "sub-host", "sub-host"), (rows["host-b"].Role, rows["host-c"].Role, rows["host-d"].Role));
        Assert.All(rows.Values, r => Assert.True(r.BytesSent > 0, $"{r.Host} got nothing"));
        Assert.Contains(events, e => e.Destinations.Count == 3 && e.Destinations.All(d => d.PagesPlanned > 0));

        var vm = await cluster.Call(FabricContract.DescribeVm, new DescribeVmRequest { Name = "mh-split" });
        Assert.Equal(("host-b", VmState.Running), (vm.Host, vm.State));
        Assert.Equal(["host-c", "host-d"], vm.RemoteShares.Select(s => s.Host));
        Assert.All(vm.RemoteShares, s => Assert.True(s.Bytes > 0, $"{s.Host} holds nothing"));
        Assert.Equal(vm.RemoteShares.Aggregate(0UL, (n, s) => n + s.Bytes), vm.RemoteBytes);
        Assert.True(vm.ResidentBytes <= (ulong)MultiHostCluster.Small, $"the main holds {vm.ResidentBytes} bytes, its share is {MultiHostCluster.Small}");
        Assert.Equal("", vm.MemoryError);
        var c = await cluster.Call(FabricContract.DescribeHost, new DescribeHostRequest { Name = "host-c" });
        Assert.True(c.HeldBytes > 0);
        // The VM's grain keeps its memory map (written by the main as its pager moves pages).
        var grains = cluster.Cluster.Agents[0].Silo.GrainFactory;
        await ErrorStatusTests.WaitUntil(() => grains.GetGrain<IVmGrain>("mh-split").MemoryMap().Result.Length > 0);
        var map = MemoryMap.Deserialize(await grains.GetGrain<IVmGrain>("mh-split").MemoryMap());
        Assert.Equal((long)VmPages, map.PageCount);
        Assert.Equal(2, map.SubHosts.Count);
        Assert.True(map.PagesOn(1) > 0 && map.PagesOn(2) > 0);

        // The guest runs on at the main, paging in from and out to the sub-hosts.
        var main = cluster.Cluster.Agent("host-b").Hypervisor.Find("mh-split")!;
        long ops = main.Workload!.TotalOperations;
        await ErrorStatusTests.WaitUntil(() => main.Workload!.TotalOperations > ops + (long)VmBytes);
        Assert.False(main.Run.IsFaulted, main.Run.Exception?.ToString());

        // Deleting it frees the sub-hosts' parts and every reservation.
        await cluster.Call(FabricContract.DeleteVm, new DeleteVmRequest { Name = "mh-split" });
        Assert.Equal((freeC, freeD), (cluster.Free("host-c"), cluster.Free("host-d")));
        Assert.Equal(MultiHostCluster.Small, cluster.Free("host-b"));
    }

    [Fact]
    public async Task Scatter_gather_through_two_intermediates_ends_with_every_page_gathered_and_the_intermediates_free()
    {
        await cluster.CreateVm("mh-sg", "host-a", VmBytes, new Workload { Kind = WorkloadKind.KeyValue, SetPercent = 20 });
        await cluster.WarmUp("host-a", "mh-sg", 20_000);
        long freeB = cluster.Free("host-b"), freeD = cluster.Free("host-d");

        var m = await cluster.Start("mh-sg", "host-c", Strategy.ScatterGather, null, "host-b", "host-d");
        var events = await cluster.Watch(m.Id);

        var final = events[^1].Final;
        Verified(final);
        var rows = final.Report.PerDestination.ToDictionary(d => d.Host);
        Assert.Equal(("intermediate", "intermediate"), (rows["host-b"].Role, rows["host-d"].Role));
        Assert.True(rows["host-b"].BytesSent > 0 && rows["host-d"].BytesSent > 0);
        var vm = await cluster.Call(FabricContract.DescribeVm, new DescribeVmRequest { Name = "mh-sg" });
        Assert.Equal(("host-c", VmState.Running, 0UL), (vm.Host, vm.State, vm.RemoteBytes));
        var local = cluster.Cluster.Agent("host-c").Hypervisor.Find("mh-sg")!;
        var kv = (MigrationFabric.Memory.Workloads.KeyValueStoreWorkload)local.Workload!;
        long gets = kv.Gets;
        await ErrorStatusTests.WaitUntil(() => kv.Gets > gets + 1000);
        Assert.Equal(0, kv.CorruptReads);
        // The intermediates let go of their parts once the destination had gathered everything.
        await ErrorStatusTests.WaitUntil(() => cluster.Free("host-b") == freeB && cluster.Free("host-d") == freeD);
        Assert.Empty(cluster.Cluster.Agent("host-b").Hypervisor.Vms);
        await cluster.Call(FabricContract.DeleteVm, new DeleteVmRequest { Name = "mh-sg" });
    }

    [Fact]
    public async Task Vmem_direct_to_a_small_host_and_devirtualizing_back_keep_every_page()
    {
        await cluster.CreateVm("mh-vmem", "host-a", VmBytes, Sweeper);
        await cluster.WarmUp("host-a", "mh-vmem", (long)VmBytes);

        var m = await cluster.Start("mh-vmem", "host-b", Strategy.VmemDirect, FewRounds);
        var into = (await cluster.Watch(m.Id))[^1].Final;
        Verified(into);
        // The small host set its fixed share's RAM aside before the pages came (seed 004's fixed physical memory).
        Assert.NotNull(into.Report.DestinationPreallocation);
        Assert.True(into.Report.DestinationPreallocation.ToTimeSpan() > TimeSpan.Zero);

        var vm = await cluster.Call(FabricContract.DescribeVm, new DescribeVmRequest { Name = "mh-vmem" });
        Assert.Equal(("host-b", VmState.Running), (vm.Host, vm.State));
        Assert.Equal((ulong)MultiHostCluster.Small, vm.ShareBytes);
        Assert.True(vm.SwappedBytes > 0, "part of the VM lives in the small host's private swap");
        var small = cluster.Cluster.Agent("host-b");
        var local = small.Hypervisor.Find("mh-vmem")!;
        string swapFile = local.Pager!.SwapFile.Path;
        Assert.StartsWith(Path.GetFullPath(small.DataDirectory), Path.GetFullPath(swapFile));
        Assert.True(File.Exists(swapFile));
        Assert.Equal(0, cluster.Free("host-b"));
        // A VM in private memory leaves only by reading its swap directly.
        var refused = await cluster.Fails(FabricContract.StartMigration, new StartMigrationRequest { Vm = "mh-vmem", Destination = "host-c", Strategy = Strategy.PreCopy });
        Assert.Equal(Rpc.StatusCode.FailedPrecondition, refused.StatusCode);
        Assert.Contains("vmem-devirtualize", refused.Status.Detail);
        long ops = local.Workload!.TotalOperations;
        await ErrorStatusTests.WaitUntil(() => local.Workload!.TotalOperations > ops + (4L << 20));

        var back = await cluster.Start("mh-vmem", "host-c", Strategy.VmemDevirtualize, FewRounds);
        var outOf = (await cluster.Watch(back.Id))[^1].Final;
        Verified(outOf);
        // Back on a large host the VM is all in RAM again, preallocated before the pages came.
        Assert.NotNull(outOf.Report.DestinationPreallocation);

        vm = await cluster.Call(FabricContract.DescribeVm, new DescribeVmRequest { Name = "mh-vmem" });
        Assert.Equal(("host-c", 0UL, VmBytes), (vm.Host, vm.SwappedBytes, vm.ShareBytes));
        Assert.False(File.Exists(swapFile), "the small host's swap file goes with the VM");
        Assert.Equal(MultiHostCluster.Small, cluster.Free("host-b"));
        await cluster.Call(FabricContract.DeleteVm, new DeleteVmRequest { Name = "mh-vmem" });
    }

    [Fact]
    public async Task Naive_swap_baseline_runs_the_same_path_into_plain_swap()
    {
        await cluster.CreateVm("mh-naive", "host-a", VmBytes, Sweeper);
        await cluster.WarmUp("host-a", "mh-naive", (long)VmBytes);

        var m = await cluster.Start("mh-naive", "host-b", Strategy.NaiveSwap, FewRounds);
        var final = (await cluster.Watch(m.Id))[^1].Final;

        Verified(final);
        Assert.Equal("host-b", Assert.Single(final.Report.PerDestination).Host);
        // Plain swap holds no fixed share: nothing is set aside before the pages come.
        Assert.Null(final.Report.DestinationPreallocation);
        var local = cluster.Cluster.Agent("host-b").Hypervisor.Find("mh-naive")!;
        Assert.Equal(MigrationFabric.Memory.Swap.PagingMode.Naive, local.Pager!.Mode);
        await cluster.Call(FabricContract.DeleteVm, new DeleteVmRequest { Name = "mh-naive" });
        Assert.Equal(MultiHostCluster.Small, cluster.Free("host-b"));
    }

    [Fact]
    public async Task Cancelling_a_split_leaves_the_vm_at_its_source_and_releases_the_main_and_every_sub_host()
    {
        await cluster.CreateVm("mh-cancel", "host-a", VmBytes, Sweeper);
        await cluster.WarmUp("host-a", "mh-cancel", (long)VmBytes);
        long freeB = cluster.Free("host-b"), freeC = cluster.Free("host-c"), freeD = cluster.Free("host-d");
        // 8 MiB/s: its first round alone takes seconds, so it is still running when cancelled.
        var m = await cluster.Start("mh-cancel", "host-b", Strategy.Split, new MigrationLimits { BandwidthBytesPerSecond = 8 << 20 }, "host-c", "host-d");
        await cluster.WaitForPhase(m.Id, MigrationPhase.PreCopy);
        Assert.True(cluster.Free("host-c") < freeC && cluster.Free("host-d") < freeD, "the sub-hosts reserved their parts");
        Assert.NotEmpty(cluster.Cluster.Agent("host-c").Held.Parts);

        await cluster.Call(FabricContract.CancelMigration, new CancelMigrationRequest { MigrationId = m.Id });

        var final = (await cluster.Watch(m.Id))[^1].Final;
        Assert.Equal(MigrationPhase.Cancelled, final.Phase);
        var vm = await cluster.Call(FabricContract.DescribeVm, new DescribeVmRequest { Name = "mh-cancel" });
        Assert.Equal(("host-a", VmState.Running, ""), (vm.Host, vm.State, vm.MigrationId));
        Assert.Empty(vm.RemoteShares);
        await ErrorStatusTests.WaitUntil(() => cluster.Free("host-b") == freeB && cluster.Free("host-c") == freeC && cluster.Free("host-d") == freeD);
        Assert.Empty(cluster.Cluster.Agent("host-c").Held.Parts);
        Assert.Empty(cluster.Cluster.Agent("host-d").Held.Parts);
        await cluster.Call(FabricContract.DeleteVm, new DeleteVmRequest { Name = "mh-cancel" });
    }
}
