using MigrationFabric.Grains.Membership;
using Xunit;

namespace MigrationFabric.Grains.Tests.Membership;

/// <summary>Who probes whom, and how misses are counted.</summary>
public sealed class ClusterHealthMonitorTests
{
    private static readonly DateTimeOffset T0 = DateTimeOffset.UnixEpoch;

    private static SiloAddress Silo(int port) => new("127.0.0.1", port, 1);

    private static MembershipSnapshot View(params (int Port, SiloStatus Status)[] silos) =>
        new(1, silos.Select(s => new MembershipEntry(Silo(s.Port), s.Status, T0, T0)));

    [Fact]
    public void Successors_wrap_around_the_ring_and_skip_joining_and_dead_silos()
    {
        var view = View((1, SiloStatus.Active), (2, SiloStatus.Joining), (3, SiloStatus.ShuttingDown), (4, SiloStatus.Dead), (5, SiloStatus.Active), (6, SiloStatus.Active));
        Assert.Equal([Silo(6), Silo(1)], ClusterHealthMonitor.Successors(Silo(5), view, 2));
        Assert.Equal([Silo(3), Silo(5), Silo(6)], ClusterHealthMonitor.Successors(Silo(1), view, 3));
        // A joining silo (not on the ring yet) still probes the silos after its place.
        Assert.Equal([Silo(3), Silo(5)], ClusterHealthMonitor.Successors(Silo(2), view, 2));
        // Never itself, never more than the others.
        Assert.Equal([Silo(3), Silo(5), Silo(6)], ClusterHealthMonitor.Successors(Silo(1), view, 10));
        Assert.Empty(ClusterHealthMonitor.Successors(Silo(1), View((1, SiloStatus.Active)), 3));
    }

    [Fact]
    public async Task Misses_count_up_per_silo_and_reset_when_it_answers()
    {
        var network = new InProcessProbeNetwork();
        network.Register(Silo(2));
        network.Register(Silo(3));
        var options = new MembershipOptions { ProbeTimeout = TimeSpan.FromMilliseconds(50) };
        var monitor = new ClusterHealthMonitor(Silo(1), network, options, TimeProvider.System);
        var view = View((1, SiloStatus.Active), (2, SiloStatus.Active), (3, SiloStatus.Active));

        Assert.Empty(await monitor.ProbeRoundAsync(view, CancellationToken.None));
        network.Silence(Silo(3));
        Assert.Equal([(Silo(3), 1)], await monitor.ProbeRoundAsync(view, CancellationToken.None));
        Assert.Equal([(Silo(3), 2)], await monitor.ProbeRoundAsync(view, CancellationToken.None));
        network.Register(Silo(3));
        Assert.Empty(await monitor.ProbeRoundAsync(view, CancellationToken.None));
        network.Silence(Silo(3));
        Assert.Equal([(Silo(3), 1)], await monitor.ProbeRoundAsync(view, CancellationToken.None));
    }

    [Fact]
    public async Task A_probe_that_ignores_its_token_still_misses_on_time()
    {
        var options = new MembershipOptions { ProbeTimeout = TimeSpan.FromMilliseconds(50) };
        var monitor = new ClusterHealthMonitor(Silo(1), new StuckProbe(), options, TimeProvider.System);
        var view = View((1, SiloStatus.Active), (2, SiloStatus.Active));
        var misses = await monitor.ProbeRoundAsync(view, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal([(Silo(2), 1)], misses);
    }

    private sealed class StuckProbe : IProbe
    {
        public Task ProbeAsync(SiloAddress target, CancellationToken cancellationToken) => new TaskCompletionSource().Task;
    }
}
