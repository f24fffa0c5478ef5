namespace MigrationFabric.Host.Tests;

using MigrationFabric.Contracts.V1;
using MigrationFabric.Host.Api;
using MigrationFabric.Host.Grains;

/// <summary>A split VM after its migration is a VM like any other: it moves again (pre-copy, gathering every page), and a VM's reservation and weight survive its moves.</summary>
public sealed class SplitVmAgainTests(MultiHostCluster cluster) : IClassFixture<MultiHostCluster>
{
    private const ulong VmBytes = 40UL << 20;
    private const ulong VmPages = VmBytes / 4096;

    /// <summary>Writes every page of the VM again and again, so at a small main it pages in and out all the time.</summary>
    private static readonly Workload Sweeper = new() { Kind = WorkloadKind.MemoryBenchmark };

    private static MigrationLimits FewRounds => new() { MaxRounds = 3, DisableAutoConverge = true };

    private static void Verified(Migration final)
    {
        Assert.True(final.Phase == MigrationPhase.Completed, $"{final.Phase}: {final.Error}");
        Assert.Equal(VmPages, final.Report.Integrity.PagesChecked);
        Assert.Equal(0UL, final.Report.Integrity.MismatchedPages);
    }

    private Task<Vm> Describe(string name) => cluster.Call(FabricContract.DescribeVm, new DescribeVmRequest { Name = name });

    [Fact]
    public async Task A_split_vm_moves_again_by_pre_copy_with_every_page_checked_its_sub_hosts_freed_and_its_terms_kept()
    {
        await cluster.Call(FabricContract.CreateVm, new CreateVmRequest
        {
            Name = "again", Host = "host-a", MemoryBytes = VmBytes, Workload = Sweeper, ReservationBytes = 8 << 20, Weight = 3,
        });
        await cluster.WarmUp("host-a", "again", (long)VmBytes);
        long freeC = cluster.Free("host-c"), freeD = cluster.Free("host-d");
        Verified((await cluster.Watch((await cluster.Start("again", "host-b", Strategy.Split, FewRounds, "host-c", "host-d")).Id))[^1].Final);
        var split = await Describe("again");
        Assert.Equal(("host-b", 8UL << 20, 3u), (split.Host, split.ReservationBytes, split.Weight));
        Assert.Equal(["host-c", "host-d"], split.RemoteShares.Select(s => s.Host));
        Assert.True(split.RemoteBytes > 0);
        var main = cluster.Cluster.Agent("host-b").Hypervisor.Find("again")!;
        long ops = main.Workload!.TotalOperations;
        await ErrorStatusTests.WaitUntil(() => main.Workload!.TotalOperations > ops + (long)VmBytes);

        // What cannot move it says so by name, with what can.
        var post = await cluster.Fails(FabricContract.StartMigration, new StartMigrationRequest { Vm = "again", Destination = "host-a", Strategy = Strategy.PostCopy });
        Assert.Equal(Rpc.StatusCode.FailedPrecondition, post.StatusCode);
        Assert.Contains("post-copy cannot move a split VM", post.Status.Detail);
        Assert.Contains("use pre-copy", post.Status.Detail);
        var onSub = await cluster.Fails(FabricContract.StartMigration, new StartMigrationRequest { Vm = "again", Destination = "host-c", Strategy = Strategy.PreCopy });
        Assert.Equal(Rpc.StatusCode.FailedPrecondition, onSub.StatusCode);
        Assert.Contains("'host-c' holds part of it", onSub.Status.Detail);

        // Pre-copy from the main reads the pages the sub-hosts hold from them while the guest pages in and out.
        var m = await cluster.Start("again", "host-a", Strategy.PreCopy, FewRounds);
        Verified((await cluster.Watch(m.Id))[^1].Final);

        var moved = await Describe("again");
        Assert.Equal(("host-a", VmState.Running, 0UL, ""), (moved.Host, moved.State, moved.RemoteBytes, moved.MemoryError));
        Assert.Empty(moved.RemoteShares);
        Assert.Equal((8UL << 20, 3u), (moved.ReservationBytes, moved.Weight));
        var local = cluster.Cluster.Agent("host-a").Hypervisor.Find("again")!;
        Assert.Equal((8L << 20, 3u), (local.ReservationBytes, local.Weight));
        var grains = cluster.Cluster.Agents[0].Silo.GrainFactory;
        Assert.Empty(await grains.GetGrain<IVmGrain>("again").MemoryMap());
        // The old main and sub-hosts let go of everything.
        await ErrorStatusTests.WaitUntil(() => cluster.Free("host-c") == freeC && cluster.Free("host-d") == freeD && cluster.Free("host-b") == MultiHostCluster.Small);
        Assert.Empty(cluster.Cluster.Agent("host-c").Held.Parts);
        Assert.Empty(cluster.Cluster.Agent("host-d").Held.Parts);
        Assert.Null(cluster.Cluster.Agent("host-b").Hypervisor.Find("again"));
        long after = local.Workload!.TotalOperations;
        await ErrorStatusTests.WaitUntil(() => local.Workload!.TotalOperations > after + (long)VmBytes);
        Assert.False(local.Run.IsFaulted, local.Run.Exception?.ToString());

        // Whole again: any strategy moves it.
        var back = await cluster.Start("again", "host-c", Strategy.PostCopy);
        Verified((await cluster.Watch(back.Id))[^1].Final);
        var whole = await Describe("again");
        Assert.Equal(("host-c", 8UL << 20, 3u), (whole.Host, whole.ReservationBytes, whole.Weight));
        await cluster.Call(FabricContract.DeleteVm, new DeleteVmRequest { Name = "again" });
    }

    [Fact]
    public async Task A_split_gives_the_main_the_pages_the_guest_touched_just_before_it_while_the_demand_monitor_samples()
    {
        const long hotFirst = 9216, pages = (long)VmPages;
        await cluster.CreateVm("hot", "host-a", VmBytes, new Workload { Kind = WorkloadKind.Idle });
        var local = cluster.Cluster.Agent("host-a").Hypervisor.Find("hot")!;
        // Every page written, so every access bit is set: as found, the bits say the whole VM is hot.
        using (var cpu = local.Mmu.CreateVcpu())
        {
            var page = new byte[4096];
            for (long p = 0; p < pages; p++)
            {
                page[0] = (byte)p;
                cpu.Write(p << 12, page);
            }
        }
        // Then only the last 4 MiB is touched, until the split's rounds start (its plan is made before).
        using var stop = new CancellationTokenSource();
        // This vCPU is the test's, not the VM's: when the watch below is slow it is still running at switch-over, so it
        // may be stopped while parked by the source's pause (cancelled), or find the source released (refused, never
        // let into unmapped memory: SoftwareMmu.Dispose). Either ends it; anything else fails the test.
        var touching = Task.Run(() =>
        {
            using var cpu = local.Mmu.CreateVcpu(stop.Token);
            var word = new byte[8];
            try
            {
                while (!stop.IsCancellationRequested)
                    for (long p = hotFirst; p < pages && !stop.IsCancellationRequested; p++) cpu.Read(p << 12, word);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested) { }
            catch (ObjectDisposedException e) when (e.ObjectName.EndsWith(nameof(MigrationFabric.Memory.Mmu.SoftwareMmu), StringComparison.Ordinal)) { }
        });
        await ErrorStatusTests.WaitUntil(() => local.Demand.Epochs > 2);

        var m = await cluster.Start("hot", "host-b", Strategy.Split, FewRounds, "host-c", "host-d");
        await cluster.WaitForPhase(m.Id, MigrationPhase.PreCopy);
        stop.Cancel();
        await touching;
        Verified((await cluster.Watch(m.Id))[^1].Final);

        var grains = cluster.Cluster.Agents[0].Silo.GrainFactory;
        await ErrorStatusTests.WaitUntil(() => grains.GetGrain<IVmGrain>("hot").MemoryMap().Result.Length > 0);
        var map = MigrationFabric.Migration.MultiHost.MemoryMap.Deserialize(await grains.GetGrain<IVmGrain>("hot").MemoryMap());
        // Page order would have given the main the first 6080 pages; the touched ones went there instead.
        long away = 0;
        for (long p = hotFirst; p < pages; p++)
            if (map.HostOf(p) != MigrationFabric.Migration.MultiHost.MemoryMap.Main) away++;
        Assert.Equal(0, away);
        Assert.True(map.PagesOn(1) + map.PagesOn(2) > 0);
        await cluster.Call(FabricContract.DeleteVm, new DeleteVmRequest { Name = "hot" });
    }

    [Fact]
    public async Task Reservation_and_weight_are_kept_by_a_pre_copy_move()
    {
        await cluster.Call(FabricContract.CreateVm, new CreateVmRequest
        {
            Name = "terms", Host = "host-c", MemoryBytes = 16 << 20, Workload = new Workload { Kind = WorkloadKind.Idle }, ReservationBytes = 4 << 20, Weight = 7,
        });
        var created = await Describe("terms");
        Assert.Equal((4UL << 20, 7u), (created.ReservationBytes, created.Weight));

        Verified16((await cluster.Watch((await cluster.Start("terms", "host-d", Strategy.PreCopy)).Id))[^1].Final);

        var moved = await Describe("terms");
        Assert.Equal(("host-d", 4UL << 20, 7u), (moved.Host, moved.ReservationBytes, moved.Weight));
        var local = cluster.Cluster.Agent("host-d").Hypervisor.Find("terms")!;
        Assert.Equal((4L << 20, 7u), (local.ReservationBytes, local.Weight));
        await cluster.Call(FabricContract.DeleteVm, new DeleteVmRequest { Name = "terms" });

        static void Verified16(Migration final) => Assert.True(final.Phase == MigrationPhase.Completed, $"{final.Phase}: {final.Error}");
    }
}
