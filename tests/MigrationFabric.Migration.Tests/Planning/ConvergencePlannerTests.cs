using MigrationFabric.Migration.Planning;
using MigrationFabric.Migration.Strategies;

namespace MigrationFabric.Migration.Tests.Planning;

public class ConvergencePlannerTests
{
    [Fact]
    public void Switches_over_when_the_remainder_fits_the_downtime_target_at_the_measured_rate()
    {
        var planner = new ConvergencePlanner(new PreCopyOptions { DowntimeTarget = TimeSpan.FromMilliseconds(300) });
        // 1 GB/s: 300 ms carry 73,242 pages of 4 KiB.
        Assert.Equal(RoundDecision.SwitchOver, planner.Decide(1, 73_000, 1e9, null));
        Assert.Equal(RoundDecision.Continue, planner.Decide(1, 74_000, 1e9, null));
        Assert.Equal(RoundDecision.RoundsExhausted, planner.Decide(3, 74_000, 1e9, 3));
        Assert.Equal(RoundDecision.Continue, planner.Decide(5, 1, 0, null)); // no rate known yet
        Assert.Equal(TimeSpan.MaxValue, ConvergencePlanner.ExpectedDowntime(1, 0));
    }

    [Fact]
    public void Auto_converge_steps_the_throttle_as_QEMU_while_the_guest_outruns_the_link()
    {
        var planner = new ConvergencePlanner(new PreCopyOptions());
        Assert.Equal(0, planner.NextThrottle(0, pagesSent: 1000, pagesDirtied: 500)); // at the trigger ratio: not yet
        Assert.Equal(0.2, planner.NextThrottle(0, 1000, 501));
        Assert.Equal(0.3, planner.NextThrottle(0.2, 1000, 900), 9);
        Assert.Equal(0.99, planner.NextThrottle(0.95, 1000, 900), 9);
        var off = new ConvergencePlanner(new PreCopyOptions { AutoConverge = false });
        Assert.Equal(0, off.NextThrottle(0, 1000, 100_000));
    }

    [Fact]
    public void At_the_maximum_throttle_for_the_set_number_of_rounds_iterating_stops_decisively()
    {
        var planner = new ConvergencePlanner(new PreCopyOptions { DowntimeTarget = TimeSpan.FromMilliseconds(300), AutoConvergeMaxThrottleRounds = 3 });
        const long TooMany = 1_000_000; // 4 GB: never fits 300 ms at 1 GB/s
        Assert.Equal(RoundDecision.Continue, planner.Decide(1, TooMany, 1e9, null, throttleDuringRound: 0));
        Assert.Equal(RoundDecision.Continue, planner.Decide(2, TooMany, 1e9, null, 0.9));
        Assert.Equal(RoundDecision.Continue, planner.Decide(3, TooMany, 1e9, null, 0.99));
        Assert.Equal(RoundDecision.Continue, planner.Decide(4, TooMany, 1e9, null, 0.99));
        Assert.Equal(2, planner.RoundsAtMaxThrottle);
        Assert.Equal(RoundDecision.ThrottleExhausted, planner.Decide(5, TooMany, 1e9, null, 0.99));
        var ending = planner.Ending(RoundDecision.ThrottleExhausted, 5, TooMany, ConvergencePlanner.ExpectedDowntime(TooMany, 1e9), 0.99, null);
        Assert.Equal((RoundDecision.ThrottleExhausted, 5, TooMany, 0.99), (ending.Decision, ending.Rounds, ending.RemainingPages, ending.Throttle));
        Assert.Equal(4096, ending.ExpectedDowntime.TotalMilliseconds, 3);
        Assert.Contains("auto-converge exhausted: 3 rounds at the maximum throttle 0.99", ending.Reason);
        Assert.Contains("expected downtime 4096 ms, over the downtime target 300 ms", ending.Reason);
    }

    [Fact]
    public void Rounds_at_the_maximum_throttle_count_only_in_a_row_and_a_fitting_remainder_or_MaxRounds_decide_first()
    {
        var planner = new ConvergencePlanner(new PreCopyOptions { AutoConvergeMaxThrottleRounds = 2 });
        Assert.Equal(RoundDecision.Continue, planner.Decide(1, 1_000_000, 1e9, null, 0.99));
        Assert.Equal(RoundDecision.Continue, planner.Decide(2, 1_000_000, 1e9, null, 0.5)); // not at the maximum: the count restarts
        Assert.Equal(0, planner.RoundsAtMaxThrottle);
        Assert.Equal(RoundDecision.Continue, planner.Decide(3, 1_000_000, 1e9, null, 0.99));
        Assert.Equal(RoundDecision.SwitchOver, planner.Decide(4, 10, 1e9, null, 0.99));
        Assert.Equal(RoundDecision.RoundsExhausted, planner.Decide(5, 1_000_000, 1e9, maxRounds: 5, 0.99));
        var off = new ConvergencePlanner(new PreCopyOptions { AutoConverge = false, AutoConvergeMaxThrottleRounds = 1 });
        for (int round = 1; round <= 10; round++) Assert.Equal(RoundDecision.Continue, off.Decide(round, 1_000_000, 1e9, null, 0.99));
        Assert.Contains("MaxRounds (5) reached without converging", planner.Ending(RoundDecision.RoundsExhausted, 5, 1_000_000, TimeSpan.FromSeconds(4), 0.99, 5).Reason);
        Assert.Contains("expected downtime unknown", planner.Ending(RoundDecision.RoundsExhausted, 1, 5, TimeSpan.MaxValue, 0, 1).Reason);
        Assert.Throws<ArgumentOutOfRangeException>(() => planner.Ending(RoundDecision.Continue, 1, 1, TimeSpan.Zero, 0, null));
    }

    [Fact]
    public void Tail_slow_adds_only_what_brings_the_dirty_rate_to_the_threshold_as_QEMU_cpu_throttle_tailslow()
    {
        var planner = new ConvergencePlanner(new PreCopyOptions { AutoConvergeTailSlow = true });
        Assert.Equal(0.2, planner.NextThrottle(0, 1000, 600)); // the first step is the initial throttle either way
        // At 0.9 the guest runs 10%; dirtying 1000 where the threshold is 500 wants 5% running: +0.05, under the 0.1 increment.
        Assert.Equal(0.95, planner.NextThrottle(0.9, 1000, 1000), 9);
        // Barely over the threshold: at least one percentage point.
        Assert.Equal(0.51, planner.NextThrottle(0.5, 1000, 501), 9);
        // Far over it: at most the increment.
        Assert.Equal(0.4, planner.NextThrottle(0.3, 1000, 100_000), 9);
        Assert.Equal(0.99, planner.NextThrottle(0.985, 1000, 100_000), 9);
    }

    [Theory]
    [InlineData(nameof(PreCopyOptions.AutoConvergeMaxThrottleRounds))]
    [InlineData(nameof(PreCopyOptions.DowntimeLimit))]
    public void Out_of_range_convergence_options_are_refused_by_name(string option)
    {
        var options = option == nameof(PreCopyOptions.DowntimeLimit)
            ? new PreCopyOptions { DowntimeTarget = TimeSpan.FromMilliseconds(300), DowntimeLimit = TimeSpan.FromMilliseconds(100) }
            : new PreCopyOptions { AutoConvergeMaxThrottleRounds = 0 };
        var e = Assert.Throws<ArgumentException>(() => new PreCopy(options));
        Assert.Contains($"PreCopyOptions.{option}", e.Message);
    }
}
