using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Workloads;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.Planning;
using MigrationFabric.Migration.Reporting;
using MigrationFabric.Migration.Strategies;
using MigrationFabric.Migration.Tests.Support;

namespace MigrationFabric.Migration.Tests.Strategies;

public class PreCopyTests
{
    private const long Mib = 1 << 20;
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Idle_vm_moves_with_every_page_verified_and_device_state_delivered()
    {
        await using var pair = await MigrationPair.CreateAsync(32 * Mib);
        pair.Vm.Fill(stride: 3);
        ulong digest = pair.Vm.Digest();
        byte[]? delivered = null;
        var incoming = pair.Accept((state, _) => { delivered = state.ToArray(); return Task.CompletedTask; });

        var report = await new PreCopy().RunAsync(pair.Job(deviceState: () => new byte[] { 1, 2, 3 })).WaitAsync(Long);

        await incoming.Completion.WaitAsync(Long);
        Assert.Equal(IncomingPhase.Completed, incoming.Phase);
        Assert.Equal(digest, pair.Target.Digest());
        Assert.Equal(new byte[] { 1, 2, 3 }, delivered);
        Assert.Equal(pair.Vm.Memory.PageCount, report.PagesVerified);
        Assert.True(report.ZeroPagesSent >= pair.Vm.Memory.PageCount * 2 / 3 - 1, $"zero pages sent as flags: {report.ZeroPagesSent}");
        Assert.True(report.BytesSent < 12 * Mib, $"only the written third goes as bytes, sent {report.BytesSent}");
        Assert.True(report.Downtime > TimeSpan.Zero && report.Downtime < report.TotalTime);
        Assert.True(pair.Vm.Mmu.IsPaused, "the source stays paused: the VM runs at the destination now");
        Assert.Equal(pair.Vm.Memory.CountOf(PageResidency.Resident), pair.Target.Memory.CountOf(PageResidency.Resident));
        Assert.Contains(pair.Progress, p => p.Phase == MigrationPhase.Completed);
        Assert.Equal(report.Rounds.Sum(r => r.Pages), report.PagesSent);
    }

    [Fact]
    public async Task Hot_set_vm_converges_and_retransfers_dirty_pages()
    {
        await using var pair = await MigrationPair.CreateAsync(32 * Mib);
        pair.Vm.Fill(stride: 2);
        pair.Vm.Start(new HotSetWorkload(new HotSetOptions { WorkingSetFraction = 0.1, TargetDirtyPagesPerSecond = 20_000 }));
        await pair.Vm.WaitForProgressAsync(2_000, Long);
        var incoming = pair.Accept();

        var report = await new PreCopy(new PreCopyOptions { BandwidthCap = 64 * Mib }).RunAsync(pair.Job()).WaitAsync(Long);

        await incoming.Completion.WaitAsync(Long);
        Assert.True(report.Rounds.Count >= 2, $"rounds: {report.Rounds.Count}");
        Assert.True(report.PagesSent > pair.Vm.Memory.PageCount, "dirty pages were sent again");
        Assert.True(report.DirtyPagesPerSecond > 0);
        Assert.Equal(pair.Vm.Digest(), pair.Target.Digest());
        await pair.Vm.StopWorkloadAsync();
    }

    [Fact]
    public async Task Key_value_vm_moves_intact_and_the_store_reads_back_at_the_destination()
    {
        await using var pair = await MigrationPair.CreateAsync(32 * Mib);
        var kv = new KeyValueStoreWorkload(new KeyValueStoreOptions { Keys = 4000, ValueBytes = 512, Vcpus = 2 });
        pair.Vm.Start(kv);
        await pair.Vm.WaitForProgressAsync(50_000, Long);
        var incoming = pair.Accept();

        var report = await new PreCopy(new PreCopyOptions { Streams = 2 }).RunAsync(pair.Job()).WaitAsync(Long);

        await incoming.Completion.WaitAsync(Long);
        Assert.Equal(pair.Vm.Digest(), pair.Target.Digest());
        Assert.Equal(0, kv.CorruptReads);
        Assert.Equal(pair.Vm.Memory.PageCount, report.PagesVerified);
        await pair.Vm.StopWorkloadAsync();
    }

    [Fact]
    public async Task Compressed_streams_move_the_vm_intact()
    {
        await using var pair = await MigrationPair.CreateAsync(16 * Mib);
        pair.Vm.Fill(stride: 1);
        var incoming = pair.Accept();
        var report = await new PreCopy(new PreCopyOptions { Compression = MigrationFabric.Migration.Codec.PageCompression.Deflate, Streams = 3 }).RunAsync(pair.Job()).WaitAsync(Long);
        await incoming.Completion.WaitAsync(Long);
        Assert.Equal(pair.Vm.Digest(), pair.Target.Digest());
        Assert.True(report.BytesSent < 16 * Mib, $"the mostly-zero pattern pages compress: {report.BytesSent} bytes");
    }

    [Fact]
    public async Task Integrity_check_fails_loudly_naming_a_page_whose_change_escaped_dirty_tracking()
    {
        await using var pair = await MigrationPair.CreateAsync(16 * Mib);
        pair.Vm.Fill(stride: 1);
        var incoming = pair.Accept();
        // A write that bypasses the dirty log after the page was sent: exactly what a dirty-tracking bug would do.
        var job = pair.Job(p =>
        {
            if (p.Phase == MigrationPhase.SwitchOver) pair.Vm.Memory.GetPageBytes(1234)[10] ^= 0xFF;
        });
        var e = await Assert.ThrowsAsync<MigrationIntegrityException>(() => new PreCopy().RunAsync(job).WaitAsync(Long));
        Assert.Equal(1, e.MismatchedCount);
        Assert.Equal([1234L], e.MismatchedPages);
        Assert.Contains("integrity check FAILED", e.Message);
        await Assert.ThrowsAsync<MigrationIntegrityException>(() => incoming.Completion.WaitAsync(Long));
    }

    [Fact]
    public async Task Memory_benchmark_that_outruns_the_link_engages_auto_converge_and_lands_whole()
    {
        await using var pair = await MigrationPair.CreateAsync(16 * Mib);
        pair.Vm.Start(new MemoryBenchmarkWorkload());
        await pair.Vm.WaitForProgressAsync(64 * Mib, Long);
        var incoming = pair.Accept();
        // MaxRounds bounds the run: even at 99% throttle a sweeping vCPU dirties hundreds of pages in its 1%
        // slices, so whether one round's remainder happens to fit 20 ms is down to the scheduler (a quiet run
        // once spent 384 rounds and its 50 s deadline). What this test owes is that the throttle engages and the
        // VM lands whole; MaxRounds (QEMU-style forced switch-over) makes the ending deterministic.
        var options = new PreCopyOptions
        {
            BandwidthCap = 128 * Mib, DowntimeTarget = TimeSpan.FromMilliseconds(20), AutoConvergeInitialThrottle = 0.5, AutoConvergeIncrement = 0.2,
            MaxRounds = 30, Deadline = TimeSpan.FromSeconds(50),
        };

        var report = await new PreCopy(options).RunAsync(pair.Job()).WaitAsync(Long);

        await incoming.Completion.WaitAsync(Long);
        Assert.True(report.MaxThrottle >= 0.5, $"auto-converge throttled the vCPUs: max throttle {report.MaxThrottle}");
        Assert.Contains(pair.Progress, p => p.Throttle > 0);
        Assert.Equal(pair.Vm.Digest(), pair.Target.Digest());
        await pair.Vm.StopWorkloadAsync();
    }

    [Fact]
    public async Task Without_auto_converge_the_deadline_fails_cleanly_and_the_source_runs_on_untouched()
    {
        await using var pair = await MigrationPair.CreateAsync(16 * Mib);
        pair.Vm.Start(new MemoryBenchmarkWorkload());
        await pair.Vm.WaitForProgressAsync(64 * Mib, Long);
        var incoming = pair.Accept();
        var options = new PreCopyOptions
        {
            // A round of 4096 pages takes 0.5 s at 32 MiB/s, in which the sweep re-dirties every page unless starved of a core
            // for all of it, and 1 ms leaves room for 8 pages (with 128 MiB/s and 20 ms a starved sweep once let the
            // remainder fit before the deadline).
            BandwidthCap = 32 * Mib, DowntimeTarget = TimeSpan.FromMilliseconds(1), AutoConverge = false,
            Deadline = TimeSpan.FromSeconds(2),
        };

        var e = await Assert.ThrowsAsync<MigrationDeadlineExceededException>(() => new PreCopy(options).RunAsync(pair.Job()).WaitAsync(Long));

        Assert.Contains("deadline", e.Message);
        Assert.Equal("PreCopy", e.Phase);
        Assert.False(pair.Vm.Mmu.IsPaused);
        Assert.Equal(0, pair.Vm.Mmu.Throttle);
        await pair.Vm.WaitForProgressAsync(16 * Mib, Long); // still running
        await Assert.ThrowsAsync<MigrationAbortedException>(() => incoming.Completion.WaitAsync(Long));
        Assert.Equal(0, pair.Target.Memory.ResidentPages);
        await pair.Vm.StopWorkloadAsync();
    }

    [Theory]
    [InlineData(MigrationPhase.Setup)]
    [InlineData(MigrationPhase.PreCopy)]
    [InlineData(MigrationPhase.SwitchOver)]
    public async Task Cancel_before_switch_over_leaves_the_source_running_and_untouched(MigrationPhase phase)
    {
        await using var pair = await MigrationPair.CreateAsync(16 * Mib);
        pair.Vm.Fill(stride: 2);
        ulong digest = pair.Vm.Digest();
        pair.Vm.Start(new IdleWorkload());
        var incoming = pair.Accept();
        using var cts = new CancellationTokenSource();
        // Round 2 of pre-copy: cancel mid-phase, after pages have flowed.
        var job = pair.Job(p =>
        {
            if (p.Phase == phase && (phase != MigrationPhase.PreCopy || p.PagesSent > 0)) cts.Cancel();
        });
        var options = new PreCopyOptions { BandwidthCap = 32 * Mib, ProgressInterval = TimeSpan.FromMilliseconds(20) };

        var e = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => new PreCopy(options).RunAsync(job, cts.Token).WaitAsync(Long));

        Assert.Contains("cancelled", e.Message);
        Assert.False(pair.Vm.Mmu.IsPaused);
        Assert.Equal(0, pair.Vm.Mmu.Throttle);
        Assert.Equal(digest, pair.Vm.Digest());
        Assert.Contains(pair.Progress, p => p.Phase == MigrationPhase.Failed);
        if (phase != MigrationPhase.Setup || incoming.Phase != IncomingPhase.Receiving)
            await Assert.ThrowsAsync<MigrationAbortedException>(() => incoming.Completion.WaitAsync(Long));
        Assert.Equal(0, pair.Target.Memory.ResidentPages);
        await pair.Vm.StopWorkloadAsync();
    }

    [Fact]
    public async Task Destination_killed_mid_pre_copy_fails_clearly_and_the_source_runs_on_untouched()
    {
        await using var pair = await MigrationPair.CreateAsync(32 * Mib);
        pair.Vm.Fill(stride: 1);
        ulong digest = pair.Vm.Digest();
        pair.Vm.Start(new IdleWorkload());
        pair.Accept();
        int killed = 0;
        var job = pair.Job(p =>
        {
            if (p.Phase == MigrationPhase.PreCopy && p.PagesSent > 1000 && Interlocked.Exchange(ref killed, 1) == 0)
                _ = Task.Run(pair.Destination.KillAsync);
        });
        var options = new PreCopyOptions { BandwidthCap = 8 * Mib, ProgressInterval = TimeSpan.FromMilliseconds(20) };

        var e = await Assert.ThrowsAsync<MigrationFailedException>(() => new PreCopy(options).RunAsync(job).WaitAsync(Long));

        Assert.Equal(1, killed);
        Assert.Equal("PreCopy", e.Phase);
        Assert.Contains("keeps running at the source", e.Message);
        Assert.False(pair.Vm.Mmu.IsPaused);
        Assert.Equal(digest, pair.Vm.Digest());
        await pair.Vm.StopWorkloadAsync();
    }

    [Fact]
    public async Task A_destination_that_expects_no_such_migration_fails_it_in_setup()
    {
        await using var pair = await MigrationPair.CreateAsync(16 * Mib);
        var e = await Assert.ThrowsAsync<MigrationFailedException>(() => new PreCopy().RunAsync(pair.Job()).WaitAsync(Long));
        Assert.Equal("Setup", e.Phase);
        Assert.Contains("FailedPrecondition", e.Message);
        Assert.Contains(pair.MigrationId, e.Message);
    }

    [Fact]
    public void Options_out_of_range_are_rejected_naming_the_option()
    {
        Assert.Contains("PreCopyOptions.Streams", Assert.Throws<ArgumentException>(() => new PreCopy(new PreCopyOptions { Streams = 0 })).Message);
        Assert.Contains("DowntimeTarget", Assert.Throws<ArgumentException>(() => new PreCopy(new PreCopyOptions { DowntimeTarget = TimeSpan.Zero })).Message);
        Assert.Contains("BandwidthCap", Assert.Throws<ArgumentException>(() => new PreCopy(new PreCopyOptions { BandwidthCap = -1 })).Message);
        Assert.Contains("MaxRounds", Assert.Throws<ArgumentException>(() => new PreCopy(new PreCopyOptions { MaxRounds = 0 })).Message);
        Assert.Contains("Prefetch", Assert.Throws<ArgumentException>(() => new PostCopy(new PostCopyOptions { Prefetch = 1000 })).Message);
        Assert.Contains("PreCopyRounds", Assert.Throws<ArgumentException>(() => new Hybrid(new HybridOptions { PreCopyRounds = 0 })).Message);
    }

    // Auto-converge that cannot converge, made deterministic: the test plays a guest that re-dirties 5000 of the 8192
    // pages in every round, whatever the throttle (the rounds' own progress reports drive it, mid-round, so nothing
    // depends on how a vCPU thread is scheduled). At a 1 ms target 5000 pages never fit.
    private const int Redirtied = 5000;

    private static PreCopyOptions Unconvergeable(TimeSpan? limit = null) => new()
    {
        DowntimeTarget = TimeSpan.FromMilliseconds(1), DowntimeLimit = limit, ProgressInterval = TimeSpan.FromTicks(1),
        AutoConvergeInitialThrottle = 0.99, AutoConvergeMaxThrottle = 0.99, AutoConvergeMaxThrottleRounds = 3,
    };

    private static MigrationJob RedirtyingJob(MigrationPair pair)
    {
        int lastRound = 0;
        var memory = pair.Vm.Memory;
        return pair.Job(p =>
        {
            // The first report of each pre-copy round comes mid-round (at its 4096th page) when the round is that long.
            if (p.Phase != MigrationPhase.PreCopy || p.Round <= lastRound) return;
            lastRound = p.Round;
            for (long page = memory.PageCount - Redirtied; page < memory.PageCount; page++)
            {
                BitConverter.TryWriteBytes(memory.GetPageBytes(page), ((ulong)p.Round << 32) | (ulong)page);
                memory.Dirty.MarkDirty(page);
            }
        });
    }

    [Fact]
    public async Task At_the_maximum_throttle_without_converging_pre_copy_switches_over_after_the_set_rounds_and_reports_why()
    {
        await using var pair = await MigrationPair.CreateAsync(32 * Mib);
        pair.Vm.Fill();
        var incoming = pair.Accept();
        var options = Unconvergeable();

        var report = await new PreCopy(options).RunAsync(RedirtyingJob(pair)).WaitAsync(Long);

        await incoming.Completion.WaitAsync(Long);
        var ending = report.PreCopyEnding!;
        Assert.Equal(RoundDecision.ThrottleExhausted, ending.Decision);
        // Round 1 unthrottled (it triggers the throttle), rounds 2-4 at the maximum, then the switch-over's final pages.
        Assert.Equal(4, ending.Rounds);
        Assert.Equal([0, 0.99, 0.99, 0.99], report.Rounds.Take(4).Select(r => r.Throttle));
        Assert.Equal(5, report.Rounds.Count);
        Assert.Equal(Redirtied, ending.RemainingPages);
        Assert.True(ending.ExpectedDowntime > options.DowntimeTarget && ending.ExpectedDowntime < TimeSpan.MaxValue, $"expected {ending.ExpectedDowntime}");
        Assert.Contains("auto-converge exhausted: 3 rounds at the maximum throttle 0.99", ending.Reason);
        Assert.Equal(Redirtied, report.Rounds[^1].Pages);
        Assert.Equal(pair.Vm.Digest(), pair.Target.Digest());
    }

    [Fact]
    public async Task Past_the_downtime_limit_pre_copy_that_cannot_converge_fails_by_name_and_the_vm_stays_at_the_source()
    {
        await using var pair = await MigrationPair.CreateAsync(32 * Mib);
        pair.Vm.Fill();
        var incoming = pair.Accept();

        var e = await Assert.ThrowsAsync<MigrationFailedException>(
            () => new PreCopy(Unconvergeable(limit: TimeSpan.FromMilliseconds(1))).RunAsync(RedirtyingJob(pair)).WaitAsync(Long));

        var inner = Assert.IsType<DowntimeLimitExceededException>(e.InnerException);
        Assert.Equal(RoundDecision.ThrottleExhausted, inner.Ending.Decision);
        Assert.Contains("DowntimeLimit 1 ms", e.Message);
        Assert.Contains("auto-converge exhausted", e.Message);
        Assert.Contains("keeps running at the source", e.Message);
        Assert.Equal("PreCopy", e.Phase);
        Assert.False(pair.Vm.Mmu.IsPaused);
        Assert.Equal(0, pair.Vm.Mmu.Throttle);
        await Assert.ThrowsAsync<MigrationAbortedException>(() => incoming.Completion.WaitAsync(Long));
        Assert.Equal(0, pair.Target.Memory.ResidentPages);
    }

    [Fact]
    public async Task Hybrid_whose_auto_converge_is_exhausted_hands_the_rest_to_post_copy()
    {
        await using var pair = await MigrationPair.CreateAsync(32 * Mib);
        pair.Vm.Fill();
        var incoming = pair.Accept();
        var o = Unconvergeable();
        var options = new HybridOptions
        {
            PreCopyRounds = 10, DowntimeTarget = o.DowntimeTarget, ProgressInterval = o.ProgressInterval,
            AutoConvergeInitialThrottle = 0.99, AutoConvergeMaxThrottle = 0.99, AutoConvergeMaxThrottleRounds = 3,
        };

        var report = await new Hybrid(options).RunAsync(RedirtyingJob(pair)).WaitAsync(Long);

        await incoming.Completion.WaitAsync(Long);
        Assert.Equal(RoundDecision.ThrottleExhausted, report.PreCopyEnding!.Decision);
        Assert.Equal(4, report.Rounds.Count);
        Assert.Equal(Redirtied, report.PostCopyPages);
        Assert.Equal(pair.Vm.Memory.PageCount, report.PagesVerified);
        Assert.Equal(pair.Vm.Digest(), pair.Target.Digest());
    }
}
