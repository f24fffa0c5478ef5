namespace MigrationFabric.Host.Tests;

using Google.Protobuf.WellKnownTypes;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Host.Api;
using MigrationFabric.Rpc;

/// <summary>limits.downtime_limit and the report's pre_copy_ending through the public API: fail instead of a long pause, or say why it switched over.</summary>
public sealed class DowntimeLimitTests(TestCluster cluster) : IClassFixture<TestCluster>
{
    // Sequential writes over all memory as fast as the vCPU runs (not a paced hot set: a paced vCPU starved of a core
    // by parallel test classes can dirty almost nothing in a round). One round at 16 MiB/s takes about a second, in
    // which the sweep re-dirties every page, so with one round allowed the rest cannot fit a 5 ms target (a single
    // page takes 0.25 ms at that rate); the outcome depends on counts, not on timing.
    private static readonly Workload Sweeper = new() { Kind = WorkloadKind.MemoryBenchmark };

    private static MigrationLimits CannotConverge(TimeSpan? downtimeLimit) => new()
    {
        BandwidthBytesPerSecond = 16 << 20, DisableAutoConverge = true, MaxRounds = 1,
        DowntimeTarget = Duration.FromTimeSpan(TimeSpan.FromMilliseconds(5)),
        DowntimeLimit = downtimeLimit is { } l ? Duration.FromTimeSpan(l) : null,
    };

    [Fact]
    public async Task Past_the_downtime_limit_pre_copy_fails_naming_the_limit_and_the_vm_keeps_running_at_its_source()
    {
        await cluster.CreateVm("dl-fail", "host-a", 16 << 20, Sweeper);
        await cluster.WarmUp("host-a", "dl-fail", 2 * (16 << 20));
        var m = await cluster.Start("dl-fail", "host-b", Strategy.PreCopy, CannotConverge(TimeSpan.FromMilliseconds(10)));
        Assert.Equal(10, m.Request.Limits.DowntimeLimit.ToTimeSpan().TotalMilliseconds);
        var final = (await cluster.Watch(m.Id))[^1].Final;

        Assert.Equal(MigrationPhase.Failed, final.Phase);
        Assert.Contains("limits.downtime_limit of 10 ms", final.Error);
        Assert.Contains("keeps running at the source", final.Error);
        var ending = final.Report.PreCopyEnding;
        Assert.Equal(PreCopyDecision.RoundsExhausted, ending.Decision);
        Assert.Equal(1u, ending.Rounds);
        Assert.True(ending.RemainingPages > 0);
        Assert.True(ending.ExpectedDowntime is null || ending.ExpectedDowntime.ToTimeSpan() > TimeSpan.FromMilliseconds(10), ending.ToString());
        Assert.Contains("MaxRounds", ending.Reason);

        var vm = await cluster.Call(FabricContract.DescribeVm, new DescribeVmRequest { Name = "dl-fail" });
        Assert.Equal(("host-a", VmState.Running, ""), (vm.Host, vm.State, vm.MigrationId));
        var local = cluster.Cluster.Agent("host-a").Hypervisor.Find("dl-fail")!;
        long before = local.Workload!.TotalOperations;
        await ErrorStatusTests.WaitUntil(() => local.Workload.TotalOperations > before);
        await ErrorStatusTests.WaitUntil(() => cluster.Cluster.Agent("host-b").Hypervisor.Find("dl-fail") is null);
        await cluster.Call(FabricContract.DeleteVm, new DeleteVmRequest { Name = "dl-fail" });
    }

    [Fact]
    public async Task Without_a_limit_it_switches_over_and_the_report_says_why()
    {
        await cluster.CreateVm("dl-over", "host-a", 16 << 20, Sweeper);
        await cluster.WarmUp("host-a", "dl-over", 2 * (16 << 20));
        var m = await cluster.Start("dl-over", "host-c", Strategy.PreCopy, CannotConverge(null));
        // Defaults filled in and echoed: no limit, three rounds at the maximum throttle.
        Assert.Null(m.Request.Limits.DowntimeLimit);
        Assert.Equal(3u, m.Request.Limits.AutoConvergeMaxThrottleRounds);
        var final = (await cluster.Watch(m.Id))[^1].Final;

        Assert.Equal(MigrationPhase.Completed, final.Phase);
        Assert.Equal(0UL, final.Report.Integrity.MismatchedPages);
        var ending = final.Report.PreCopyEnding;
        Assert.Equal(PreCopyDecision.RoundsExhausted, ending.Decision);
        Assert.Equal(1u, ending.Rounds);
        Assert.True(ending.RemainingPages > 0);
        Assert.Contains("MaxRounds (1) reached without converging", ending.Reason);
        Assert.Contains("over the downtime target 5 ms", ending.Reason);
        var vm = await cluster.Call(FabricContract.DescribeVm, new DescribeVmRequest { Name = "dl-over" });
        Assert.Equal(("host-c", VmState.Running), (vm.Host, vm.State));
        await cluster.Call(FabricContract.DeleteVm, new DeleteVmRequest { Name = "dl-over" });
    }

    [Fact]
    public async Task Bad_limits_are_invalid_arguments_naming_the_field()
    {
        await cluster.CreateVm("dl-bad", "host-a", 16 << 20, new Workload { Kind = WorkloadKind.Idle });
        async Task Refused(Strategy strategy, MigrationLimits limits, params string[] mentions)
        {
            var e = await cluster.Fails(FabricContract.StartMigration, new StartMigrationRequest { Vm = "dl-bad", Destination = "host-b", Strategy = strategy, Limits = limits });
            Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
            foreach (var mention in mentions) Assert.Contains(mention, e.Status.Detail, StringComparison.Ordinal);
        }
        var ms = (double v) => Duration.FromTimeSpan(TimeSpan.FromMilliseconds(v));

        await Refused(Strategy.PreCopy, new MigrationLimits { DowntimeTarget = ms(100), DowntimeLimit = ms(50) },
            "limits.downtime_limit (50 ms) must be at least limits.downtime_target (100 ms)");
        // The default target (300 ms) counts when the target is unset.
        await Refused(Strategy.PreCopy, new MigrationLimits { DowntimeLimit = ms(200) }, "limits.downtime_limit (200 ms)", "(300 ms)");
        await Refused(Strategy.PreCopy, new MigrationLimits { DowntimeLimit = ms(-5) }, "limits.downtime_limit must not be negative", "-5 ms");
        await Refused(Strategy.Hybrid, new MigrationLimits { DowntimeLimit = ms(500) }, "limits.downtime_limit is only for pre-copy, not hybrid");
        await Refused(Strategy.PostCopy, new MigrationLimits { DowntimeLimit = ms(500) }, "limits.downtime_limit is only for pre-copy, not post-copy");
        await Refused(Strategy.PreCopy, new MigrationLimits { AutoConvergeMaxThrottleRounds = 1001 }, "limits.auto_converge_max_throttle_rounds must be within 1..1000", "1001");
        await Refused(Strategy.PostCopy, new MigrationLimits { AutoConvergeTailSlow = true }, "limits.auto_converge_tail_slow", "not post-copy");
        await Refused(Strategy.PostCopy, new MigrationLimits { AutoConvergeMaxThrottleRounds = 2 }, "limits.auto_converge_max_throttle_rounds", "not post-copy");

        // Nothing started: the VM is where it was.
        var vm = await cluster.Call(FabricContract.DescribeVm, new DescribeVmRequest { Name = "dl-bad" });
        Assert.Equal(("host-a", VmState.Running, ""), (vm.Host, vm.State, vm.MigrationId));
        await cluster.Call(FabricContract.DeleteVm, new DeleteVmRequest { Name = "dl-bad" });
    }
}
