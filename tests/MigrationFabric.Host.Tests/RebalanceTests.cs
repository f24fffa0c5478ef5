namespace MigrationFabric.Host.Tests;

using MigrationFabric.Contracts.V1;
using MigrationFabric.Host.Balancing;
using MigrationFabric.Host.Errors;
using MigrationFabric.Host.Hypervisor;
using MigrationFabric.Memory.Balancing;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Swap;
using MigrationFabric.Rpc;

/// <summary>VMMB on one host: targets from the VMs' demand monitors, applied as private shares (exactly) or balloons (as far as free pages allow).</summary>
public sealed class RebalanceTests : IAsyncLifetime
{
    private const long MiB = 1L << 20;
    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"mf-rebalance-test-{Guid.NewGuid():N}");
    private readonly List<LocalHypervisor> _hypervisors = [];

    public Task InitializeAsync()
    {
        Directory.CreateDirectory(_dir);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        foreach (var h in _hypervisors) await h.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private LocalHypervisor Host(long budget)
    {
        var h = new LocalHypervisor("host-r", budget);
        _hypervisors.Add(h);
        return h;
    }

    private PrivateVirtualMemoryOptions Private(string name, long share) =>
        new() { SharePages = share / Page.Size, SwapFilePath = Path.Combine(_dir, name + ".swap"), ChunkPages = 64 };

    private static LocalVm Started(LocalHypervisor host, string name, long bytes, Workload workload, PrivateVirtualMemoryOptions? privateMemory = null,
        long reservation = 0, uint weight = 1)
    {
        var vm = host.Admit(name, bytes, workload, StatusCode.ResourceExhausted, privateMemory: privateMemory);
        vm.ReservationBytes = reservation;
        vm.Weight = weight;
        vm.Start();
        return vm;
    }

    /// <summary>Waits (generously) until the VM's monitor has seen re-references: its demand estimate is positive.</summary>
    private static async Task<long> DemandOf(LocalVm vm, long atLeastPages)
    {
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            if (vm.Run.IsFaulted) await vm.Run;
            long d = vm.Demand.EstimateDemandPages();
            if (d >= atLeastPages) return d;
            Assert.True(DateTime.UtcNow < until, $"{vm.Name}: demand stayed at {d} pages, expected at least {atLeastPages}");
            await Task.Delay(50);
        }
    }

    private static HostRebalanceOptions DemandOnly() => new() { Targets = new MemoryRebalancerOptions { DistributeSpare = false } };

    [Fact]
    public async Task An_over_committed_vm_whose_demand_exceeds_its_share_is_given_more_and_a_dry_run_changes_nothing()
    {
        var host = Host(64 * MiB);
        // 32 MiB VM with an 8 MiB share; its hot set is 50% (16 MiB), so its demand is about twice its share.
        var hot = Started(host, "hot", 32 * MiB, new Workload { Kind = WorkloadKind.HotSet, WorkingSetPercent = 50 }, Private("hot", 8 * MiB));
        var plain = Started(host, "plain", 16 * MiB, new Workload { Kind = WorkloadKind.Idle }, reservation: 12 * MiB);
        long demand = await DemandOf(hot, 8 * MiB / Page.Size);
        var rebalance = new HostMemoryRebalance(host, DemandOnly());

        var dry = rebalance.Rebalance(dryRun: true);
        Assert.Equal((ulong)(64 * MiB), dry.DividedBytes);
        Assert.Equal(["hot", "plain"], dry.Targets.Select(t => t.Vm));
        Assert.All(dry.Targets, t => Assert.False(t.Applied));
        Assert.All(dry.Targets, t => Assert.Contains("dry run", t.Note));
        Assert.Equal(8 * MiB, hot.ShareBytes);
        Assert.Equal(0, plain.BalloonedBytes);

        var done = rebalance.Rebalance(dryRun: false);
        var h = done.Targets.Single(t => t.Vm == "hot");
        Assert.True(h.PrivateMemory);
        Assert.True(h.DemandBytes > (ulong)(8 * MiB), $"demand {h.DemandBytes}");
        Assert.True(h.TargetBytes > (ulong)(8 * MiB) && h.TargetBytes <= (ulong)(32 * MiB), $"target {h.TargetBytes}");
        Assert.True(h.Applied, h.Note);
        Assert.Equal((long)h.TargetBytes, hot.ShareBytes);
        Assert.Equal((long)h.TargetBytes / Page.Size, hot.Pager!.SharePages);
        // The plain VM is held at its reservation by its balloon (an idle guest leaves most pages untouched).
        var p = done.Targets.Single(t => t.Vm == "plain");
        Assert.False(p.PrivateMemory);
        Assert.Equal((ulong)(12 * MiB), p.TargetBytes);
        Assert.True(p.Applied, p.Note);
        Assert.True(plain.BalloonedBytes >= 4 * MiB);
        // Admission follows the share: the plain VM keeps its whole size reserved.
        Assert.Equal((long)h.TargetBytes + 16 * MiB, host.ReservedBytes);
        Assert.True(demand > 0);
    }

    [Fact]
    public async Task A_shrunk_share_pages_the_vm_down_and_frees_its_reservation()
    {
        var host = Host(64 * MiB);
        var vm = Started(host, "small", 32 * MiB, new Workload { Kind = WorkloadKind.HotSet, WorkingSetPercent = 5 }, Private("small", 24 * MiB));
        await DemandOf(vm, 1);
        var r = new HostMemoryRebalance(host, DemandOnly()).Rebalance(dryRun: false).Targets.Single();
        // Demand about 1.6 MiB: the target is the 4 MiB minimum share.
        Assert.Equal((ulong)(4 * MiB), r.TargetBytes);
        Assert.True(r.Applied, r.Note);
        Assert.Equal(4 * MiB, vm.ShareBytes);
        Assert.Equal(4 * MiB, host.ReservedBytes);
        await vm.Pager!.SettleAsync();
        Assert.True(vm.ResidentBytes <= 4 * MiB, $"footprint {vm.ResidentBytes}");
    }

    [Fact]
    public async Task A_fully_resident_vm_using_its_memory_cannot_be_held_below_it_and_a_grow_stops_at_the_unreserved_budget()
    {
        var host = Host(48 * MiB);
        // The benchmark writes all its memory, so no page is left free for the balloon.
        var full = Started(host, "full", 16 * MiB, new Workload { Kind = WorkloadKind.MemoryBenchmark });
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (full.Memory.CountOf(PageResidency.Zero) > 0)
        {
            if (full.Run.IsFaulted) await full.Run;
            Assert.True(DateTime.UtcNow < until, "the benchmark did not touch all its memory");
            await Task.Delay(20);
        }
        // Reserved 40 MiB of 48: the two needs (16 + at least 40) do not fit, so "full" gets less than it uses.
        var other = Started(host, "other", 48 * MiB, new Workload { Kind = WorkloadKind.Idle }, Private("other", 8 * MiB), reservation: 40 * MiB);
        var response = new HostMemoryRebalance(host, DemandOnly()).Rebalance(dryRun: false);

        var f = response.Targets.Single(t => t.Vm == "full");
        Assert.True(f.TargetBytes < (ulong)(16 * MiB), $"target {f.TargetBytes}");
        Assert.False(f.Applied);
        Assert.Contains("fully resident", f.Note);
        Assert.Contains("share_bytes", f.Note);
        Assert.Equal(0, full.BalloonedBytes);

        // "other" is owed 40 MiB, but "full" keeps its 16 MiB reserved: the share grows only to the 32 MiB the budget has.
        var o = response.Targets.Single(t => t.Vm == "other");
        Assert.True(o.TargetBytes >= (ulong)(40 * MiB));
        Assert.False(o.Applied);
        Assert.Contains("only", o.Note);
        Assert.Equal(32 * MiB, other.ShareBytes);
        Assert.Equal(48 * MiB, host.ReservedBytes);
    }

    [Fact]
    public void Reservations_above_the_memory_to_divide_are_a_failed_precondition_naming_the_host()
    {
        var host = Host(16 * MiB);
        Started(host, "r1", 32 * MiB, new Workload { Kind = WorkloadKind.Idle }, Private("r1", 4 * MiB), reservation: 24 * MiB);
        Started(host, "r2", 32 * MiB, new Workload { Kind = WorkloadKind.Idle }, Private("r2", 4 * MiB), reservation: 24 * MiB);
        var e = Assert.Throws<FabricException>(() => new HostMemoryRebalance(host).Rebalance(dryRun: true));
        Assert.Equal(StatusCode.FailedPrecondition, e.Code);
        Assert.Contains("host-r", e.Message);
        Assert.Contains("reservations", e.Message);
    }

    [Fact]
    public async Task A_periodic_rebalance_grows_a_share_without_being_asked_and_stops_when_disposed()
    {
        var host = Host(64 * MiB);
        var hot = Started(host, "periodic", 32 * MiB, new Workload { Kind = WorkloadKind.HotSet, WorkingSetPercent = 50 }, Private("periodic", 8 * MiB));
        await DemandOf(hot, 8 * MiB / Page.Size);
        var periodic = new PeriodicRebalance(host, TimeSpan.FromMilliseconds(100), DemandOnly());
        await using (periodic)
        {
            var until = DateTime.UtcNow + TimeSpan.FromSeconds(60);
            while (hot.ShareBytes <= 8 * MiB)
            {
                Assert.True(DateTime.UtcNow < until, $"no periodic rebalance grew the share (rounds {periodic.Rounds}, error {periodic.LastError?.Message})");
                await Task.Delay(50);
            }
            Assert.Null(periodic.LastError);
            Assert.True(periodic.Rounds >= 1);
            Assert.True(periodic.Last!.Targets.Single().Applied, periodic.Last.Targets.Single().Note);
        }
        long rounds = periodic.Rounds;
        await Task.Delay(300);
        Assert.Equal(rounds, periodic.Rounds);
        Assert.Throws<ArgumentOutOfRangeException>(() => new PeriodicRebalance(host, TimeSpan.Zero));
        Assert.Contains("RebalanceInterval", Assert.Throws<ArgumentException>(() =>
            new MigrationFabric.Host.Agent.HostAgentOptions { HostName = "h", RebalanceInterval = TimeSpan.FromSeconds(-1) }.Validate()).Message);
    }

    [Fact]
    public void Bad_options_are_refused_naming_the_option()
    {
        var e = Assert.Throws<ArgumentException>(() => new HostMemoryRebalance(Host(16 * MiB), new HostRebalanceOptions { MinimumShareBytes = 100 }));
        Assert.Contains("MinimumShareBytes", e.Message);
        e = Assert.Throws<ArgumentException>(() => new HostMemoryRebalance(Host(16 * MiB), new HostRebalanceOptions { Targets = new MemoryRebalancerOptions { HeadroomFraction = -1 } }));
        Assert.Contains("HeadroomFraction", e.Message);
    }

    [Fact]
    public async Task A_vm_not_started_yet_is_left_out_and_keeps_its_reservation()
    {
        var host = Host(64 * MiB);
        Started(host, "running", 16 * MiB, new Workload { Kind = WorkloadKind.Idle });
        host.Admit("incoming", 32 * MiB, new Workload { Kind = WorkloadKind.Idle }, StatusCode.FailedPrecondition);
        var response = new HostMemoryRebalance(host).Rebalance(dryRun: false);
        Assert.Equal(["running"], response.Targets.Select(t => t.Vm));
        Assert.Equal((ulong)(32 * MiB), response.DividedBytes);
        Assert.Equal(48 * MiB, host.ReservedBytes);
        await Task.CompletedTask;
    }
}

/// <summary>RebalanceMemory through the scheduler API: routed to the host's own agent, with request errors as gRPC statuses.</summary>
public sealed class RebalanceApiTests(TestCluster cluster) : IClassFixture<TestCluster>
{
    [Fact]
    public async Task A_missing_or_unknown_host_is_an_invalid_argument_or_not_found()
    {
        var e = await cluster.Fails(MigrationFabric.Host.Api.FabricContract.RebalanceMemory, new RebalanceMemoryRequest());
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("host", e.Status.Detail);
        e = await cluster.Fails(MigrationFabric.Host.Api.FabricContract.RebalanceMemory, new RebalanceMemoryRequest { Host = "host-z", DryRun = true });
        Assert.Equal(StatusCode.NotFound, e.StatusCode);
        Assert.Contains("host-z", e.Status.Detail);
    }

    [Fact]
    public async Task A_rebalance_through_any_agent_answers_for_the_named_hosts_vms()
    {
        await cluster.CreateVm("rb-api-1", "host-c", 32 << 20, new Workload { Kind = WorkloadKind.HotSet });
        try
        {
            // The cluster's endpoint is host-a's agent: the call is routed to host-c's grain.
            var dry = await cluster.Call(MigrationFabric.Host.Api.FabricContract.RebalanceMemory, new RebalanceMemoryRequest { Host = "host-c", DryRun = true });
            var t = Assert.Single(dry.Targets);
            Assert.Equal("rb-api-1", t.Vm);
            Assert.False(t.Applied);
            Assert.False(t.PrivateMemory);
            Assert.Equal(1u, t.Weight);
            Assert.Equal((ulong)TestCluster.Budget, dry.DividedBytes);
            Assert.True(t.TargetBytes <= 32UL << 20);

            var applied = await cluster.Call(MigrationFabric.Host.Api.FabricContract.RebalanceMemory, new RebalanceMemoryRequest { Host = "host-c" });
            t = Assert.Single(applied.Targets);
            // Ample budget: the spare memory is handed out, so the VM's target is its whole size and nothing needs a balloon.
            Assert.Equal(32UL << 20, t.TargetBytes);
            Assert.True(t.Applied, t.Note);
        }
        finally
        {
            await cluster.Call(MigrationFabric.Host.Api.FabricContract.DeleteVm, new DeleteVmRequest { Name = "rb-api-1" });
        }
    }

    [Fact]
    public async Task Bad_memory_terms_are_invalid_arguments_naming_the_field_and_leave_no_vm()
    {
        var idle = new Workload { Kind = WorkloadKind.Idle };
        async Task Invalid(CreateVmRequest r, string field)
        {
            var e = await cluster.Fails(MigrationFabric.Host.Api.FabricContract.CreateVm, r);
            Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
            Assert.Contains(field, e.Status.Detail);
            Assert.Null(cluster.Cluster.Agent("host-b").Hypervisor.Find(r.Name));
        }
        await Invalid(new CreateVmRequest { Name = "rb-bad", Host = "host-b", MemoryBytes = 32 << 20, Workload = idle, ShareBytes = (8 << 20) + 1 }, "share_bytes");
        await Invalid(new CreateVmRequest { Name = "rb-bad", Host = "host-b", MemoryBytes = 32 << 20, Workload = idle, ShareBytes = 64 << 20 }, "share_bytes");
        await Invalid(new CreateVmRequest { Name = "rb-bad", Host = "host-b", MemoryBytes = 32 << 20, Workload = idle, ShareBytes = 1 << 20 }, "share_bytes");
        await Invalid(new CreateVmRequest { Name = "rb-bad", Host = "host-b", MemoryBytes = 32 << 20, Workload = idle, ReservationBytes = 33 << 20 }, "reservation_bytes");
        await Invalid(new CreateVmRequest { Name = "rb-bad", Host = "host-b", MemoryBytes = 32 << 20, Workload = idle, Weight = 10_001 }, "weight");
        // The name was released: it can be created for real now.
        await cluster.Call(MigrationFabric.Host.Api.FabricContract.CreateVm, new CreateVmRequest { Name = "rb-bad", Host = "host-b", MemoryBytes = 32 << 20, Workload = idle });
        await cluster.Call(MigrationFabric.Host.Api.FabricContract.DeleteVm, new DeleteVmRequest { Name = "rb-bad" });
    }

    [Fact]
    public async Task An_over_committed_vm_is_admitted_by_its_share_reports_its_swap_and_a_rebalance_moves_its_share()
    {
        var host = cluster.Cluster.Agent("host-b").Hypervisor;
        long reservedBefore = host.ReservedBytes;
        // 64 MiB swept by the memory benchmark with a 16 MiB share: most of it must live in the private swap file.
        var created = await cluster.Call(MigrationFabric.Host.Api.FabricContract.CreateVm, new CreateVmRequest
        {
            Name = "rb-over", Host = "host-b", MemoryBytes = 64 << 20, ShareBytes = 16 << 20, ReservationBytes = 8 << 20, Weight = 3,
            Workload = new Workload { Kind = WorkloadKind.MemoryBenchmark },
        });
        try
        {
            Assert.Equal(16UL << 20, created.ShareBytes);
            Assert.Equal(reservedBefore + (16L << 20), host.ReservedBytes);
            var local = host.Find("rb-over")!;
            Assert.Equal(8L << 20, local.ReservationBytes);
            Assert.Equal(3u, local.Weight);
            Assert.StartsWith(cluster.Cluster.Agent("host-b").DataDirectory, local.Pager!.SwapFile.Path);

            Vm vm;
            var until = DateTime.UtcNow + TestCluster.Patience;
            do
            {
                Assert.True(DateTime.UtcNow < until, "the VM never swapped");
                await Task.Delay(50);
                vm = await cluster.Call(MigrationFabric.Host.Api.FabricContract.DescribeVm, new DescribeVmRequest { Name = "rb-over" });
            }
            while (vm.SwappedBytes < 16UL << 20);
            var h = await cluster.Call(MigrationFabric.Host.Api.FabricContract.DescribeHost, new DescribeHostRequest { Name = "host-b" });
            Assert.True(h.SwapUsedBytes >= 16UL << 20, $"host swap {h.SwapUsedBytes}");
            // A page being installed counts as resident before the vCPU that grew the footprint reclaims room, so a snapshot
            // may be a few pages over the share; never a chunk (1 MiB) over.
            Assert.True(vm.ResidentBytes <= (16UL << 20) + (1 << 20), $"resident {vm.ResidentBytes}");

            // Its demand is its whole memory (a sweep) and the host has room: the share grows to the VM's size.
            until = DateTime.UtcNow + TestCluster.Patience;
            while (local.Demand.EstimateDemandPages() < (32L << 20) / 4096)
            {
                Assert.True(DateTime.UtcNow < until, "the demand monitor never saw the sweep");
                await Task.Delay(50);
            }
            var response = await cluster.Call(MigrationFabric.Host.Api.FabricContract.RebalanceMemory, new RebalanceMemoryRequest { Host = "host-b" });
            var t = response.Targets.Single(x => x.Vm == "rb-over");
            Assert.True(t.PrivateMemory);
            Assert.Equal(8UL << 20, t.ReservationBytes);
            Assert.Equal(3u, t.Weight);
            Assert.True(t.Applied, t.Note);
            Assert.True(t.TargetBytes > 16UL << 20, $"target {t.TargetBytes}");
            vm = await cluster.Call(MigrationFabric.Host.Api.FabricContract.DescribeVm, new DescribeVmRequest { Name = "rb-over" });
            Assert.Equal(t.TargetBytes, vm.ShareBytes);
            Assert.Equal(reservedBefore + (long)t.TargetBytes, host.ReservedBytes);
        }
        finally
        {
            await cluster.Call(MigrationFabric.Host.Api.FabricContract.DeleteVm, new DeleteVmRequest { Name = "rb-over" });
        }
        Assert.Equal(reservedBefore, host.ReservedBytes);
    }

    [Fact]
    public async Task An_over_committed_vm_with_pages_in_swap_moves_by_devirtualizing_with_every_page_verified()
    {
        await cluster.Call(MigrationFabric.Host.Api.FabricContract.CreateVm, new CreateVmRequest
        {
            Name = "rb-move", Host = "host-b", MemoryBytes = 64 << 20, ShareBytes = 16 << 20,
            Workload = new Workload { Kind = WorkloadKind.HotSet, WorkingSetPercent = 50, DirtyPagesPerSecond = 2000 },
        });
        try
        {
            var local = cluster.Cluster.Agent("host-b").Hypervisor.Find("rb-move")!;
            var until = DateTime.UtcNow + TestCluster.Patience;
            while (local.SwappedBytes < 4L << 20)
            {
                Assert.True(DateTime.UtcNow < until, "the VM never swapped");
                await Task.Delay(50);
            }
            // Pre-copy reads guest memory only, so the agent sends an over-committed VM's swapped pages the way that reads both.
            var refused = await Assert.ThrowsAsync<RpcException>(() => cluster.Start("rb-move", "host-c", Strategy.PreCopy));
            Assert.Equal(StatusCode.FailedPrecondition, refused.StatusCode);
            Assert.Contains("vmem-devirtualize", refused.Status.Detail);
            var m = await cluster.Start("rb-move", "host-c", Strategy.VmemDevirtualize);
            var final = (await cluster.Watch(m.Id))[^1].Final;
            Assert.True(final.Phase == MigrationPhase.Completed, final.Error);
            Assert.Equal(0UL, final.Report.Integrity.MismatchedPages);
            Assert.Equal((64UL << 20) / 4096, final.Report.Integrity.PagesChecked);
            var vm = await cluster.Call(MigrationFabric.Host.Api.FabricContract.DescribeVm, new DescribeVmRequest { Name = "rb-move" });
            Assert.Equal("host-c", vm.Host);
            Assert.Null(cluster.Cluster.Agent("host-b").Hypervisor.Find("rb-move"));
        }
        finally
        {
            await cluster.Call(MigrationFabric.Host.Api.FabricContract.DeleteVm, new DeleteVmRequest { Name = "rb-move" });
        }
    }
}
