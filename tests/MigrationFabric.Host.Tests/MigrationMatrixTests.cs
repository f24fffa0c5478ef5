namespace MigrationFabric.Host.Tests;

using MigrationFabric.Contracts.V1;
using MigrationFabric.Host.Api;

/// <summary>Every implemented strategy x every workload on small VMs through the public API, each ending with the integrity check.</summary>
public sealed class MigrationMatrixTests(TestCluster cluster) : IClassFixture<TestCluster>
{
    public static TheoryData<Strategy, WorkloadKind> Matrix()
    {
        var data = new TheoryData<Strategy, WorkloadKind>();
        foreach (var s in new[] { Strategy.PreCopy, Strategy.PostCopy, Strategy.Hybrid })
            foreach (var w in new[] { WorkloadKind.Idle, WorkloadKind.HotSet, WorkloadKind.KeyValue, WorkloadKind.MemoryBenchmark, WorkloadKind.MemorySpike })
                data.Add(s, w);
        return data;
    }

    private static Workload WorkloadOf(WorkloadKind kind) => kind switch
    {
        WorkloadKind.HotSet => new Workload { Kind = kind, WorkingSetPercent = 20, DirtyPagesPerSecond = 10_000 },
        WorkloadKind.KeyValue => new Workload { Kind = kind, SetPercent = 20 },
        WorkloadKind.MemorySpike => new Workload { Kind = kind, SpikeBytes = 8 << 20 },
        _ => new Workload { Kind = kind },
    };

    [Theory]
    [MemberData(nameof(Matrix))]
    public async Task Migrates_with_every_page_verified_and_the_vm_running_at_the_destination(Strategy strategy, WorkloadKind workload)
    {
        string vm = $"mx-{strategy}-{workload}".ToLowerInvariant();
        const ulong size = 64UL << 20;
        await cluster.CreateVm(vm, "host-a", size, WorkloadOf(workload));
        // A moment of running so the guest has written what it writes.
        await Task.Delay(200);
        var m = await cluster.Start(vm, "host-b", strategy, new MigrationLimits { Deadline = Google.Protobuf.WellKnownTypes.Duration.FromTimeSpan(TimeSpan.FromSeconds(60)) });
        var events = await cluster.Watch(m.Id);
        var final = events[^1].Final;
        Assert.True(final.Phase == MigrationPhase.Completed, $"{strategy} x {workload}: {final.Phase} {final.Error}");
        var report = final.Report;
        Assert.Equal(size / 4096, report.Integrity.PagesChecked);
        Assert.Equal(0UL, report.Integrity.MismatchedPages);
        Assert.NotEqual(0UL, report.Integrity.VmDigest);
        Assert.True(report.Downtime.ToTimeSpan() > TimeSpan.Zero);
        Assert.True(report.TotalTime.ToTimeSpan() >= report.Downtime.ToTimeSpan());
        Assert.True(report.BytesSent > 0);
        Assert.Equal("host-b", Assert.Single(report.PerDestination).Host);
        // The workload ran 200 ms before the migration: its samples (100 ms apart) are in the report, placed before it.
        Assert.Contains(report.Throughput, s => s.OffsetMs <= 0);
        if (strategy == Strategy.PostCopy) Assert.Empty(report.PagesPerRound);
        else Assert.NotEmpty(report.PagesPerRound);
        Assert.Contains(events, e => e.Phase == MigrationPhase.Switchover || e.Phase == MigrationPhase.PostCopy || e.Phase == MigrationPhase.Verifying || e.Final is not null);

        var after = await cluster.Call(FabricContract.DescribeVm, new DescribeVmRequest { Name = vm });
        Assert.Equal(("host-b", VmState.Running, ""), (after.Host, after.State, after.MigrationId));
        Assert.Null(cluster.Cluster.Agent("host-a").Hypervisor.Find(vm));
        var dest = cluster.Cluster.Agent("host-b").Hypervisor.Find(vm)!;
        Assert.NotNull(dest.Workload);
        // The guest runs on at the destination: a post-copy fault that a background push answered meanwhile (the
        // source then serves no more pages) must not stop it.
        Assert.False(dest.Run.IsFaulted, dest.Run.Exception?.ToString());
        await cluster.Call(FabricContract.DeleteVm, new DeleteVmRequest { Name = vm });
    }
}
