using MigrationFabric.Grains.Membership;
using Xunit;
using Xunit.Abstractions;

namespace MigrationFabric.Grains.Tests.Membership;

/// <summary>The protocol with Orleans-like default periods, on a hand-moved clock (seconds of protocol time, milliseconds of test time).</summary>
public sealed class DefaultOptionsLivenessTests(ITestOutputHelper output)
{
    [Fact]
    public async Task With_default_options_a_crashed_silo_is_voted_dead_after_the_missed_probe_limit()
    {
        var clock = new ManualTimeProvider(new DateTimeOffset(2026, 11, 22, 0, 0, 0, TimeSpan.Zero));
        var options = new MembershipOptions(); // ProbeTimeout 5 s, 3 missed probes, 2 votes, heartbeat 30 s
        var table = new InMemoryMembershipTable();
        var network = new InProcessProbeNetwork();
        var services = new List<MembershipService>();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            for (int i = 0; i < 3; i++)
            {
                var silo = new SiloAddress("127.0.0.1", 11000 + i, 1);
                network.Register(silo);
                var s = new MembershipService(silo, table, network, options, clock);
                services.Add(s);
                await s.StartAsync(timeout.Token);
                await s.BecomeActiveAsync(timeout.Token);
            }
            var victim = services[0];
            network.Unregister(victim.Self);
            await victim.DisposeAsync();
            var crashedAt = clock.GetUtcNow();

            var survivor = services[1];
            var dead = survivor.WaitForAsync(v => v.GetStatus(victim.Self) == SiloStatus.Dead, timeout.Token);
            await AdvanceUntilAsync(clock, dead, TimeSpan.FromSeconds(80), timeout.Token);
            Assert.True(dead.IsCompleted, $"not declared dead after {clock.GetUtcNow() - crashedAt} of protocol time");
            var detection = clock.GetUtcNow() - crashedAt;
            output.WriteLine($"declared dead after {detection.TotalSeconds:F1} s of protocol time");

            // Probe-based: at least NumMissedProbesLimit probe periods, and well before the 90 s stale-heartbeat rule.
            Assert.InRange(detection, options.ProbeTimeout * options.NumMissedProbesLimit, TimeSpan.FromSeconds(60));
            var row = (await table.ReadAllAsync(timeout.Token)).Find(victim.Self)!;
            Assert.Equal(2, row.Entry.Suspicions.Count);
            Assert.All(row.Entry.Suspicions, v => Assert.True(v.Time > crashedAt, "votes carry the voters' protocol time"));
            var seen = services[2].WaitForAsync(v => v.ActiveSilos.Count == 2, timeout.Token);
            await AdvanceUntilAsync(clock, seen, TimeSpan.FromSeconds(5), timeout.Token); // one version poll (1 s) is enough
            Assert.True(seen.IsCompleted, "the third silo did not see the death within 5 s of protocol time");
        }
        finally
        {
            foreach (var s in services)
                await s.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_quiet_healthy_cluster_stays_healthy_over_many_heartbeat_periods()
    {
        // Nothing bumps the table version for ten minutes, so only heartbeats show the silos are alive.
        var clock = new ManualTimeProvider(new DateTimeOffset(2026, 11, 22, 0, 0, 0, TimeSpan.Zero));
        var table = new InMemoryMembershipTable();
        var network = new InProcessProbeNetwork();
        var services = new List<MembershipService>();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            for (int i = 0; i < 3; i++)
            {
                var silo = new SiloAddress("127.0.0.1", 12000 + i, 1);
                network.Register(silo);
                var s = new MembershipService(silo, table, network, new MembershipOptions(), clock);
                services.Add(s);
                await s.StartAsync(timeout.Token);
                await s.BecomeActiveAsync(timeout.Token);
            }
            long version = (await table.ReadVersionAsync(timeout.Token)).Version;
            for (int step = 0; step < 120; step++)
            {
                clock.Advance(TimeSpan.FromSeconds(5));
                await Task.Delay(20, timeout.Token); // real time for the loops to run their turn
            }
            var data = await table.ReadAllAsync(timeout.Token);
            Assert.All(data.Rows, r => Assert.Equal(SiloStatus.Active, r.Entry.Status));
            Assert.All(data.Rows, r => Assert.Empty(r.Entry.Suspicions));
            Assert.Equal(version, data.Version.Version);
            Assert.All(data.Rows, r => Assert.True(clock.GetUtcNow() - r.Entry.IAmAliveTime <= TimeSpan.FromSeconds(60), "heartbeats kept coming"));
        }
        finally
        {
            foreach (var s in services)
                await s.DisposeAsync();
        }
    }

    /// <summary>Moves the clock in half-second steps, giving the loops real time for their turn, until <paramref name="done"/> or <paramref name="limit"/>.</summary>
    private static async Task AdvanceUntilAsync(ManualTimeProvider clock, Task done, TimeSpan limit, CancellationToken cancellationToken)
    {
        var start = clock.GetUtcNow();
        while (!done.IsCompleted && clock.GetUtcNow() - start < limit)
        {
            clock.Advance(TimeSpan.FromMilliseconds(500));
            await Task.WhenAny(done, Task.Delay(15, cancellationToken));
        }
    }
}
