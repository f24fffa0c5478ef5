using MigrationFabric.Memory.Workloads;
using MigrationFabric.Migration.Reporting;
using MigrationFabric.Migration.Strategies;
using MigrationFabric.Migration.Tests.Support;

namespace MigrationFabric.Migration.Tests.Reporting;

public class ThroughputReportTests
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task The_workload_timeline_is_placed_before_during_and_after_the_migration()
    {
        await using var pair = await MigrationPair.CreateAsync(16 << 20);
        // Every page non-zero, so the capped link (32 MiB/s) holds the migration for ~0.5 s: with the store's
        // few pages alone, zero pages cross as flags and a quiet machine finished before a 50 ms sample fell
        // inside the migration.
        pair.Vm.Fill();
        var options = new KeyValueStoreOptions { Keys = 2000, ValueBytes = 256, SampleInterval = TimeSpan.FromMilliseconds(50) };
        pair.Vm.Start(new KeyValueStoreWorkload(options));
        await pair.Vm.WaitForProgressAsync(20_000, Long);
        await Task.Delay(300);
        pair.Accept((_, _) =>
        {
            pair.Target.Start(new KeyValueStoreWorkload(new KeyValueStoreOptions { Keys = 2000, ValueBytes = 256, SampleInterval = TimeSpan.FromMilliseconds(50), Preload = false }));
            return Task.CompletedTask;
        });

        var report = await new PreCopy(new PreCopyOptions { BandwidthCap = 32 << 20 }).RunAsync(pair.Job()).WaitAsync(Long);
        await pair.Target.WaitForProgressAsync(20_000, Long);
        await Task.Delay(300);
        var throughput = ThroughputReport.Build(report, pair.Vm.Workload!.Timeline, pair.Vm.StartedAt, pair.Target.Workload!.Timeline, pair.Target.StartedAt);

        Assert.Equal("ops/s", throughput.Unit);
        Assert.Contains(throughput.Timeline, t => t.Period == ThroughputPeriod.Before);
        Assert.Contains(throughput.Timeline, t => t.Period == ThroughputPeriod.During);
        Assert.Contains(throughput.Timeline, t => t.Period == ThroughputPeriod.After);
        Assert.True(throughput.BaselinePerSecond > 0);
        Assert.True(throughput.AfterPerSecond > 0);
        foreach (var t in throughput.Timeline)
            Assert.Equal(t.Period == ThroughputPeriod.Before, t.SinceStart <= TimeSpan.Zero);
        if (throughput.TimeToRecover90 is { } recover) Assert.True(recover >= TimeSpan.Zero);
        Assert.True(report.ResumedAt >= report.PausedAt && report.PausedAt >= report.StartedAt);
        await pair.Vm.StopWorkloadAsync();
        await pair.Target.StopWorkloadAsync();
    }

    [Fact]
    public async Task Progress_feed_reads_as_an_async_stream_that_ends_with_the_migration()
    {
        await using var pair = await MigrationPair.CreateAsync(16 << 20);
        pair.Vm.Fill(stride: 4);
        pair.Accept();
        var feed = new ProgressFeed();
        var job = pair.Job();
        job = new MigrationJob
        {
            MigrationId = job.MigrationId, Vm = job.Vm, Memory = job.Memory, Mmu = job.Mmu, Destination = job.Destination, Progress = feed,
        };
        var reading = Task.Run(async () =>
        {
            var phases = new List<MigrationPhase>();
            await foreach (var p in feed.ReadAllAsync()) phases.Add(p.Phase);
            return phases;
        });
        await new PreCopy().RunAsync(job).WaitAsync(Long);
        var seen = await reading.WaitAsync(Long);
        Assert.Equal(MigrationPhase.Completed, seen[^1]);
        Assert.Contains(MigrationPhase.SwitchOver, seen);
        Assert.Contains(MigrationPhase.Verifying, seen);
    }
}
