namespace MigrationFabric.Host.Tests;

using MigrationFabric.Contracts.V1;
using MigrationFabric.Host.Api;
using MigrationFabric.Rpc;

/// <summary>Malformed or impossible scheduler requests get the right gRPC status and a message naming what was wrong.</summary>
public sealed class ErrorStatusTests(TestCluster cluster) : IClassFixture<TestCluster>
{
    private static readonly Workload Idle = new() { Kind = WorkloadKind.Idle };

    private static void Is(RpcException e, StatusCode code, params string[] mentions)
    {
        Assert.Equal(code, e.StatusCode);
        foreach (var m in mentions) Assert.Contains(m, e.Status.Detail, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Unknown_vm_is_not_found()
    {
        Is(await cluster.Fails(FabricContract.DescribeVm, new DescribeVmRequest { Name = "no-such-vm" }), StatusCode.NotFound, "no-such-vm");
        Is(await cluster.Fails(FabricContract.DeleteVm, new DeleteVmRequest { Name = "no-such-vm" }), StatusCode.NotFound, "no-such-vm");
        Is(await cluster.Fails(FabricContract.StartMigration, new StartMigrationRequest { Vm = "no-such-vm", Destination = "host-b", Strategy = Strategy.PreCopy }),
            StatusCode.NotFound, "no-such-vm");
    }

    [Fact]
    public async Task Unknown_host_is_not_found()
    {
        Is(await cluster.Fails(FabricContract.DescribeHost, new DescribeHostRequest { Name = "host-z" }), StatusCode.NotFound, "host-z");
        Is(await cluster.Fails(FabricContract.CreateVm, new CreateVmRequest { Name = "e-vm0", Host = "host-z", MemoryBytes = 16 << 20, Workload = Idle }),
            StatusCode.NotFound, "host-z");
        await cluster.CreateVm("e-vm1", "host-a", 16 << 20, Idle);
        Is(await cluster.Fails(FabricContract.StartMigration, new StartMigrationRequest { Vm = "e-vm1", Destination = "host-z", Strategy = Strategy.PreCopy }),
            StatusCode.NotFound, "host-z");
        Is(await cluster.Fails(FabricContract.ListVms, new ListVmsRequest { Host = "host-z" }), StatusCode.NotFound, "host-z");
        Is(await cluster.Fails(FabricContract.DescribeMigration, new DescribeMigrationRequest { MigrationId = "no-such-migration" }), StatusCode.NotFound, "no-such-migration");
        Is(await cluster.Fails(FabricContract.CancelMigration, new CancelMigrationRequest { MigrationId = "no-such-migration" }), StatusCode.NotFound, "no-such-migration");
        // The VM is untouched by the failed request.
        var vm = await cluster.Call(FabricContract.DescribeVm, new DescribeVmRequest { Name = "e-vm1" });
        Assert.Equal(VmState.Running, vm.State);
        await cluster.Call(FabricContract.DeleteVm, new DeleteVmRequest { Name = "e-vm1" });
    }

    [Fact]
    public async Task Bad_sizes_names_and_workloads_are_invalid_arguments()
    {
        Is(await cluster.Fails(FabricContract.CreateVm, new CreateVmRequest { Name = "e-vm2", Host = "host-a", MemoryBytes = (16 << 20) + 1, Workload = Idle }),
            StatusCode.InvalidArgument, "memory_bytes");
        Is(await cluster.Fails(FabricContract.CreateVm, new CreateVmRequest { Name = "e-vm2", Host = "host-a", MemoryBytes = 4096, Workload = Idle }),
            StatusCode.InvalidArgument, "memory_bytes");
        Is(await cluster.Fails(FabricContract.CreateVm, new CreateVmRequest { Name = "", Host = "host-a", MemoryBytes = 16 << 20, Workload = Idle }),
            StatusCode.InvalidArgument, "name");
        Is(await cluster.Fails(FabricContract.CreateVm, new CreateVmRequest { Name = "bad/name", Host = "host-a", MemoryBytes = 16 << 20, Workload = Idle }),
            StatusCode.InvalidArgument, "bad/name");
        Is(await cluster.Fails(FabricContract.CreateVm, new CreateVmRequest { Name = "e-vm2", Host = "host-a", MemoryBytes = 16 << 20 }),
            StatusCode.InvalidArgument, "workload");
        Is(await cluster.Fails(FabricContract.CreateVm, new CreateVmRequest
            { Name = "e-vm2", Host = "host-a", MemoryBytes = 16 << 20, Workload = new Workload { Kind = WorkloadKind.HotSet, WorkingSetPercent = 101 } }),
            StatusCode.InvalidArgument, "working_set_percent");
        Is(await cluster.Fails(FabricContract.StartMigration, new StartMigrationRequest { Vm = "", Destination = "host-b", Strategy = Strategy.PreCopy }),
            StatusCode.InvalidArgument, "vm");
        Is(await cluster.Fails(FabricContract.StartMigration, new StartMigrationRequest { Vm = "x", Destination = "", Strategy = Strategy.PreCopy }),
            StatusCode.InvalidArgument, "destination");
        Is(await cluster.Fails(FabricContract.DescribeMigration, new DescribeMigrationRequest()), StatusCode.InvalidArgument, "migration_id");
        Assert.Null(cluster.Cluster.Agent("host-a").Hypervisor.Find("e-vm2"));
    }

    [Fact]
    public async Task Unspecified_strategy_and_bad_limits_are_invalid_and_unimplemented_strategies_are_named()
    {
        await cluster.CreateVm("e-vm3", "host-a", 16 << 20, Idle);
        Is(await cluster.Fails(FabricContract.StartMigration, new StartMigrationRequest { Vm = "e-vm3", Destination = "host-b" }), StatusCode.InvalidArgument, "strategy");
        Is(await cluster.Fails(FabricContract.StartMigration, new StartMigrationRequest
            { Vm = "e-vm3", Destination = "host-b", Strategy = Strategy.PreCopy, Limits = new MigrationLimits { Streams = 1000 } }), StatusCode.InvalidArgument, "streams");
        Is(await cluster.Fails(FabricContract.StartMigration, new StartMigrationRequest
            { Vm = "e-vm3", Destination = "host-b", Strategy = Strategy.PreCopy, Limits = new MigrationLimits { BandwidthBytesPerSecond = 10 } }),
            StatusCode.InvalidArgument, "bandwidth");
        Is(await cluster.Fails(FabricContract.StartMigration, new StartMigrationRequest { Vm = "e-vm3", Destination = "host-a", Strategy = Strategy.PreCopy }),
            StatusCode.InvalidArgument, "already runs on host 'host-a'");
        Is(await cluster.Fails(FabricContract.StartMigration, new StartMigrationRequest { Vm = "e-vm3", Destination = "host-b", Strategy = Strategy.Agile }),
            StatusCode.Unimplemented, "agile");
        Is(await cluster.Fails(FabricContract.StartMigration, new StartMigrationRequest { Vm = "e-vm3", Destination = "host-b", Strategy = Strategy.EnlightenedPostCopy }),
            StatusCode.Unimplemented, "enlightened-post-copy");
        // None of this left the VM marked as migrating.
        var vm = await cluster.Call(FabricContract.DescribeVm, new DescribeVmRequest { Name = "e-vm3" });
        Assert.Equal(VmState.Running, vm.State);
        Assert.Equal("", vm.MigrationId);
        await cluster.Call(FabricContract.DeleteVm, new DeleteVmRequest { Name = "e-vm3" });
    }

    [Fact]
    public async Task A_vm_over_the_budget_is_resource_exhausted_and_a_duplicate_name_already_exists()
    {
        Is(await cluster.Fails(FabricContract.CreateVm, new CreateVmRequest { Name = "e-big", Host = "host-c", MemoryBytes = (ulong)TestCluster.Budget + (16 << 20), Workload = Idle }),
            StatusCode.ResourceExhausted, "host-c", "e-big");
        // The name was not kept by the failed admission.
        await cluster.CreateVm("e-big", "host-c", 16 << 20, Idle);
        Is(await cluster.Fails(FabricContract.CreateVm, new CreateVmRequest { Name = "e-big", Host = "host-a", MemoryBytes = 16 << 20, Workload = Idle }),
            StatusCode.AlreadyExists, "e-big");
        await cluster.Call(FabricContract.DeleteVm, new DeleteVmRequest { Name = "e-big" });
    }

    [Fact]
    public async Task A_destination_without_room_is_a_failed_precondition_and_the_vm_stays()
    {
        // Fill host-b so a 64 MiB VM cannot land there.
        await cluster.CreateVm("e-filler", "host-b", (ulong)TestCluster.Budget - (32 << 20), Idle);
        await cluster.CreateVm("e-mover", "host-a", 64 << 20, Idle);
        Is(await cluster.Fails(FabricContract.StartMigration, new StartMigrationRequest { Vm = "e-mover", Destination = "host-b", Strategy = Strategy.PreCopy }),
            StatusCode.FailedPrecondition, "host-b", "e-mover");
        var vm = await cluster.Call(FabricContract.DescribeVm, new DescribeVmRequest { Name = "e-mover" });
        Assert.Equal(("host-a", VmState.Running, ""), (vm.Host, vm.State, vm.MigrationId));
        var failed = Assert.Single((await cluster.Call(FabricContract.ListMigrations, new ListMigrationsRequest { Vm = "e-mover" })).Migrations);
        Assert.Equal(MigrationPhase.Failed, failed.Phase);
        Assert.Contains("host-b", failed.Error);
        await cluster.Call(FabricContract.DeleteVm, new DeleteVmRequest { Name = "e-filler" });
        await cluster.Call(FabricContract.DeleteVm, new DeleteVmRequest { Name = "e-mover" });
    }

    [Fact]
    public async Task A_destination_that_cannot_preallocate_the_vm_is_resource_exhausted_and_the_vm_stays_at_the_source()
    {
        await cluster.CreateVm("e-prealloc", "host-a", 16 << 20, Idle);
        var destination = cluster.Cluster.Agent("host-c").Context;
        var preallocate = destination.Preallocate;
        destination.Preallocate = (_, _) => throw new InsufficientMemoryException("madvise(MADV_POPULATE_WRITE) of 8388608 bytes at offset 0 failed: errno 12 (Cannot allocate memory).");
        try
        {
            Is(await cluster.Fails(FabricContract.StartMigration, new StartMigrationRequest { Vm = "e-prealloc", Destination = "host-c", Strategy = Strategy.PreCopy }),
                StatusCode.ResourceExhausted, "host-c", "e-prealloc", "errno 12");
        }
        finally
        {
            destination.Preallocate = preallocate;
        }

        var vm = await cluster.Call(FabricContract.DescribeVm, new DescribeVmRequest { Name = "e-prealloc" });
        Assert.Equal(("host-a", VmState.Running, ""), (vm.Host, vm.State, vm.MigrationId));
        // Nothing stays at the destination: the incoming migration was aborted and its reservation freed.
        await WaitUntil(() => cluster.Cluster.Agent("host-c").Hypervisor.Find("e-prealloc") is null);
        await WaitUntil(() => cluster.Cluster.Agent("host-c").Hypervisor.ReservedBytes == 0);
        var failed = Assert.Single((await cluster.Call(FabricContract.ListMigrations, new ListMigrationsRequest { Vm = "e-prealloc" })).Migrations);
        Assert.Equal(MigrationPhase.Failed, failed.Phase);
        Assert.StartsWith($"{StatusCode.ResourceExhausted}:", failed.Error);
        Assert.Null(cluster.Cluster.Agent("host-c").Pages.FindIncoming(failed.Id));
        await cluster.Call(FabricContract.DeleteVm, new DeleteVmRequest { Name = "e-prealloc" });
    }

    [Fact]
    public async Task A_vm_already_migrating_is_a_failed_precondition_and_cancel_leaves_it_at_the_source()
    {
        // A hot set over all memory dirtying as fast as it can, a 1 MiB/s cap, no auto-converge: pre-copy runs until cancelled.
        await cluster.CreateVm("e-busy", "host-a", 64 << 20, NeverConverges);
        await cluster.WarmUp("host-a", "e-busy", 2 * 16384);
        var m = await cluster.Start("e-busy", "host-c", Strategy.PreCopy, Unfinishable);
        await cluster.WaitForPhase(m.Id, MigrationPhase.PreCopy);

        Is(await cluster.Fails(FabricContract.StartMigration, new StartMigrationRequest { Vm = "e-busy", Destination = "host-b", Strategy = Strategy.PostCopy }),
            StatusCode.FailedPrecondition, "already migrating", m.Id);
        Is(await cluster.Fails(FabricContract.DeleteVm, new DeleteVmRequest { Name = "e-busy" }), StatusCode.FailedPrecondition, "migrating");
        var during = await cluster.Call(FabricContract.DescribeVm, new DescribeVmRequest { Name = "e-busy" });
        Assert.Equal((VmState.Migrating, m.Id), (during.State, during.MigrationId));

        await cluster.Call(FabricContract.CancelMigration, new CancelMigrationRequest { MigrationId = m.Id });
        var final = (await cluster.Watch(m.Id))[^1].Final;
        Assert.Equal(MigrationPhase.Cancelled, final.Phase);
        Assert.Contains("host-a", final.Error);

        var after = await cluster.Call(FabricContract.DescribeVm, new DescribeVmRequest { Name = "e-busy" });
        Assert.Equal(("host-a", VmState.Running, ""), (after.Host, after.State, after.MigrationId));
        var local = cluster.Cluster.Agent("host-a").Hypervisor.Find("e-busy")!;
        Assert.False(local.IsPaused);
        Assert.Equal(0, local.Mmu.Throttle);
        // The destination discarded its copy and its reservation. The VM leaves the host's table first and its reservation
        // only once its memory is unmapped (a preallocated 64 MiB takes a while), so the host never admits a VM into RAM still held.
        await WaitUntil(() => cluster.Cluster.Agent("host-c").Hypervisor.Find("e-busy") is null);
        await WaitUntil(() => cluster.Cluster.Agent("host-c").Hypervisor.ReservedBytes == 0);
        Is(await cluster.Fails(FabricContract.CancelMigration, new CancelMigrationRequest { MigrationId = m.Id }), StatusCode.FailedPrecondition, "ended");
        await cluster.Call(FabricContract.DeleteVm, new DeleteVmRequest { Name = "e-busy" });
    }

    /// <summary>A workload that dirties every page of its VM again and again.</summary>
    internal static readonly Workload NeverConverges = new() { Kind = WorkloadKind.HotSet, WorkingSetPercent = 100, DirtyPagesPerSecond = 0 };

    /// <summary>Limits under which pre-copy of <see cref="NeverConverges"/> cannot finish: a 1 MiB/s cap, no auto-converge, no forced switch-over.</summary>
    internal static MigrationLimits Unfinishable => new() { BandwidthBytesPerSecond = 1 << 20, DisableAutoConverge = true, MaxRounds = 1_000_000 };

    internal static async Task WaitUntil(Func<bool> condition)
    {
        var until = DateTime.UtcNow + TestCluster.Patience;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < until, "condition not reached within the patience");
            await Task.Delay(20);
        }
    }
}
