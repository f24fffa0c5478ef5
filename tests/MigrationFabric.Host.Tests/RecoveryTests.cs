namespace MigrationFabric.Host.Tests;

using MigrationFabric.Contracts.V1;
using MigrationFabric.Host.Grains;
using MigrationFabric.Host.Migrations;

/// <summary>The report's recovery: watched (bounded) until the destination's workload is back at 90%, and said explicitly when it is not.</summary>
public sealed class RecoveryTests
{
    private static readonly DateTimeOffset Resumed = DateTimeOffset.UtcNow;

    private static WorkloadSamples Samples(params double[] perSecond) =>
        new(Resumed, perSecond.Select((_, i) => TimeSpan.FromMilliseconds(100 * (i + 1)).Ticks).ToArray(), perSecond);

    private static RecoveryWatchOptions Fast(TimeSpan window) => new() { Window = window, PollInterval = TimeSpan.FromMilliseconds(10) };

    [Fact]
    public async Task The_watch_reads_until_the_workload_is_back_at_90_percent_and_stops_there()
    {
        int reads = 0;
        // The destination's samples grow by one per read: 10, 50, 95 (of a 100 baseline).
        double[] values = [10, 50, 95, 100, 100];
        var seen = await RecoveryWatch.ObserveAsync(() => Task.FromResult(Samples(values[..Math.Min(++reads, values.Length)])), 100, Resumed,
            Fast(TimeSpan.FromMinutes(1)), CancellationToken.None);
        Assert.Equal(3, reads);
        Assert.NotNull(seen.Destination);
        Assert.Equal(Resumed + TimeSpan.FromMilliseconds(300), RecoveryWatch.FirstRecovered(seen.Destination!, 100));

        var report = new MigrationReport();
        var paused = Resumed - TimeSpan.FromMilliseconds(20);
        ReportMapper.SetRecovery(report, 100, seen, paused);
        Assert.Equal(RecoveryOutcome.Recovered, report.Recovery);
        // From the start of switch-over (the pause) to the recovering sample.
        Assert.Equal(TimeSpan.FromMilliseconds(320), report.RecoveryTime.ToTimeSpan());
    }

    [Fact]
    public async Task A_workload_that_stays_low_for_the_whole_window_is_reported_not_recovered_with_the_window_watched()
    {
        int reads = 0;
        var window = TimeSpan.FromMilliseconds(200);
        var seen = await RecoveryWatch.ObserveAsync(() => { reads++; return Task.FromResult(Samples(10, 20, 30)); }, 100, DateTimeOffset.UtcNow,
            Fast(window), CancellationToken.None);
        Assert.True(reads >= 2, $"read {reads} times");
        var report = new MigrationReport();
        ReportMapper.SetRecovery(report, 100, seen, Resumed);
        Assert.Equal(RecoveryOutcome.NotRecovered, report.Recovery);
        Assert.Null(report.RecoveryTime);
        Assert.True(report.RecoveryWindow.ToTimeSpan() >= window - TimeSpan.FromMilliseconds(20), $"watched {report.RecoveryWindow.ToTimeSpan()}");
    }

    [Fact]
    public async Task Without_a_baseline_there_is_one_read_and_no_recovery_to_wait_for()
    {
        int reads = 0;
        var seen = await RecoveryWatch.ObserveAsync(() => { reads++; return Task.FromResult(Samples(0, 0)); }, 0, Resumed, Fast(TimeSpan.FromMinutes(1)), CancellationToken.None);
        Assert.Equal(1, reads);
        var report = new MigrationReport();
        ReportMapper.SetRecovery(report, 0, seen, Resumed);
        Assert.Equal(RecoveryOutcome.NoBaseline, report.Recovery);
        Assert.Null(report.RecoveryTime);
    }

    [Fact]
    public async Task A_destination_that_cannot_be_read_is_not_observed_and_its_error_kept()
    {
        var seen = await RecoveryWatch.ObserveAsync(() => Task.FromException<WorkloadSamples>(new InvalidOperationException("host-b is gone")), 100, DateTimeOffset.UtcNow,
            Fast(TimeSpan.FromMilliseconds(50)), CancellationToken.None);
        Assert.Null(seen.Destination);
        Assert.Contains("host-b is gone", seen.ReadError);
        var report = new MigrationReport();
        ReportMapper.SetRecovery(report, 100, seen, Resumed);
        Assert.Equal(RecoveryOutcome.NotObserved, report.Recovery);
        Assert.Null(report.RecoveryTime);
    }

    [Fact]
    public async Task Cancelling_cuts_the_watch_short_and_keeps_what_was_read()
    {
        using var cts = new CancellationTokenSource();
        int reads = 0;
        var seen = await RecoveryWatch.ObserveAsync(() =>
        {
            if (++reads == 2) cts.Cancel();
            return Task.FromResult(Samples(10));
        }, 100, DateTimeOffset.UtcNow, Fast(TimeSpan.FromMinutes(5)), cts.Token);
        Assert.Equal(2, reads);
        Assert.NotNull(seen.Destination);
    }

    [Fact]
    public void Bad_options_are_refused_naming_the_option()
    {
        Assert.Contains("Window", Assert.Throws<ArgumentException>(() => new RecoveryWatchOptions { Window = TimeSpan.FromSeconds(-1) }.Validate()).Message);
        Assert.Contains("PollInterval", Assert.Throws<ArgumentException>(() => new RecoveryWatchOptions { PollInterval = TimeSpan.Zero }.Validate()).Message);
        var e = Assert.Throws<ArgumentException>(() => new MigrationFabric.Host.Agent.HostAgentOptions { HostName = "h", RecoveryWindow = TimeSpan.FromHours(1) }.Validate());
        Assert.Contains("RecoveryWindow", e.Message);
    }
}

/// <summary>A real migration's report says whether its workload recovered, never a silent unset recovery time.</summary>
public sealed class RecoveryReportTests(TestCluster cluster) : IClassFixture<TestCluster>
{
    [Fact]
    public async Task A_hot_set_vm_moved_by_pre_copy_reports_its_recovery_or_that_it_did_not_recover_within_the_window()
    {
        await cluster.CreateVm("rec-1", "host-a", 32 << 20, new Workload { Kind = WorkloadKind.HotSet, DirtyPagesPerSecond = 2000 });
        await cluster.WarmUp("host-a", "rec-1", 2000);
        // Let a few samples build the pre-migration baseline.
        await Task.Delay(400);
        var m = await cluster.Start("rec-1", "host-b", Strategy.PreCopy);
        var final = (await cluster.Watch(m.Id))[^1].Final;
        Assert.Equal(MigrationPhase.Completed, final.Phase);
        var report = final.Report;
        Assert.NotEqual(RecoveryOutcome.Unspecified, report.Recovery);
        Assert.NotEqual(RecoveryOutcome.NotObserved, report.Recovery);
        // A hot set at a fixed rate has a baseline.
        Assert.NotEqual(RecoveryOutcome.NoBaseline, report.Recovery);
        if (report.Recovery == RecoveryOutcome.Recovered)
        {
            Assert.NotNull(report.RecoveryTime);
            Assert.True(report.RecoveryTime.ToTimeSpan() >= report.Downtime.ToTimeSpan() - TimeSpan.FromMilliseconds(1));
        }
        else
        {
            Assert.Null(report.RecoveryTime);
            Assert.True(report.RecoveryWindow.ToTimeSpan() >= TimeSpan.FromSeconds(4.5), $"watched {report.RecoveryWindow.ToTimeSpan()}");
        }
        await cluster.Call(MigrationFabric.Host.Api.FabricContract.DeleteVm, new DeleteVmRequest { Name = "rec-1" });
    }
}
