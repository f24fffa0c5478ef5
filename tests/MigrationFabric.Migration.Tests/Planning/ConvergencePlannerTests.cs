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
}
