using MigrationFabric.Grains.Membership;
using Xunit;

namespace MigrationFabric.Grains.Tests.Membership;

/// <summary>Membership services in one process (in-memory table, in-process probes, short periods): join, detection, death.</summary>
public sealed class LivenessTests : IAsyncLifetime
{
    private readonly InMemoryMembershipTable _table = new();
    private readonly InProcessProbeNetwork _network = new();
    private readonly List<MembershipService> _services = [];
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromSeconds(30));

    /// <summary>Periods short enough for tests, long enough that a busy 2-core machine causes no false deaths.</summary>
    public static MembershipOptions FastOptions() => new()
    {
        ProbeTimeout = TimeSpan.FromMilliseconds(250),
        NumMissedProbesLimit = 3,
        IAmAlivePublishPeriod = TimeSpan.FromMilliseconds(200),
        NumMissedTableIAmAliveLimit = 15,
        TableVersionPollPeriod = TimeSpan.FromMilliseconds(50),
        TableRefreshTimeout = TimeSpan.FromMilliseconds(500),
        DeathVoteExpirationTimeout = TimeSpan.FromSeconds(20),
    };

    private static SiloAddress Silo(int port, long generation = 1) => new("127.0.0.1", port, generation);

    private async Task<MembershipService> StartAsync(SiloAddress silo, bool active = true, MembershipOptions? options = null)
    {
        _network.Register(silo);
        var service = new MembershipService(silo, _table, _network, options ?? FastOptions());
        _services.Add(service);
        await service.StartAsync(_timeout.Token);
        if (active)
            await service.BecomeActiveAsync(_timeout.Token);
        return service;
    }

    private async Task<List<MembershipService>> StartClusterAsync(int count)
    {
        var list = new List<MembershipService>();
        for (int i = 0; i < count; i++)
            list.Add(await StartAsync(Silo(9000 + i)));
        foreach (var s in list)
            await s.WaitForAsync(v => v.ActiveSilos.Count == count, _timeout.Token);
        return list;
    }

    private async Task CrashAsync(MembershipService service)
    {
        _network.Unregister(service.Self);
        await service.DisposeAsync();
    }

    [Fact]
    public async Task A_joining_silo_becomes_active_and_the_others_see_it()
    {
        var cluster = await StartClusterAsync(2);
        var seenJoining = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var seenActive = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var newcomer = Silo(9100);
        var versions = new List<long>();
        cluster[0].Changed += view =>
        {
            versions.Add(view.Version);
            if (view.GetStatus(newcomer) == SiloStatus.Joining) seenJoining.TrySetResult();
            if (view.IsActive(newcomer)) seenActive.TrySetResult();
        };

        var joiner = await StartAsync(newcomer, active: false);
        Assert.Equal(SiloStatus.Joining, joiner.Current.GetStatus(newcomer));
        await seenJoining.Task.WaitAsync(_timeout.Token);
        Assert.DoesNotContain(newcomer, cluster[0].Current.ActiveSilos);

        await joiner.BecomeActiveAsync(_timeout.Token);
        await seenActive.Task.WaitAsync(_timeout.Token);
        var view = await cluster[1].WaitForAsync(v => v.IsActive(newcomer), _timeout.Token);
        Assert.Equal(3, view.ActiveSilos.Count);
        Assert.Equal(view.ActiveSilos.Order(), view.ActiveSilos);
        lock (versions)
            Assert.True(versions.SequenceEqual(versions.Order().Distinct()), "Changed must be raised in increasing version order");
    }

    [Fact]
    public async Task A_crashed_silo_is_voted_dead_by_the_others()
    {
        var cluster = await StartClusterAsync(3);
        var victim = cluster[1];
        await CrashAsync(victim);

        foreach (var s in new[] { cluster[0], cluster[2] })
        {
            var view = await s.WaitForAsync(v => v.GetStatus(victim.Self) == SiloStatus.Dead, _timeout.Token);
            Assert.Equal(2, view.ActiveSilos.Count);
            Assert.DoesNotContain(victim.Self, view.ActiveSilos);
        }
        var row = (await _table.ReadAllAsync(CancellationToken.None)).Find(victim.Self)!;
        // Three active silos: min(NumVotesForDeathDeclaration = 2, ceil(3 / 2) = 2) votes, from both survivors.
        Assert.Equal(2, row.Entry.Suspicions.Select(v => v.Voter).Distinct().Count());
        Assert.DoesNotContain(row.Entry.Suspicions, v => v.Voter.Equals(victim.Self));
        Assert.False(cluster[0].IsDeclaredDead);
        Assert.False(cluster[2].IsDeclaredDead);
    }

    [Fact]
    public async Task With_two_silos_the_survivor_declares_alone()
    {
        var cluster = await StartClusterAsync(2);
        await CrashAsync(cluster[1]);
        await cluster[0].WaitForAsync(v => v.GetStatus(cluster[1].Self) == SiloStatus.Dead, _timeout.Token);
        var row = (await _table.ReadAllAsync(CancellationToken.None)).Find(cluster[1].Self)!;
        Assert.Single(row.Entry.Suspicions);
        Assert.Equal(cluster[0].Self, row.Entry.Suspicions[0].Voter);
    }

    [Fact]
    public async Task A_silo_that_stops_answering_probes_finds_itself_dead_and_stops()
    {
        var cluster = await StartClusterAsync(3);
        var frozen = cluster[2];
        var stopped = new TaskCompletionSource<SiloAddress>(TaskCreationOptions.RunContinuationsAsynchronously);
        frozen.SelfDeclaredDead += s => stopped.TrySetResult(s);
        _network.Silence(frozen.Self); // it keeps heartbeating and reading the table

        Assert.Equal(frozen.Self, await stopped.Task.WaitAsync(_timeout.Token));
        Assert.True(frozen.IsDeclaredDead);
        Assert.Equal(SiloStatus.Dead, frozen.Current.GetStatus(frozen.Self));
        var e = await Assert.ThrowsAsync<SiloDeclaredDeadException>(() => frozen.BecomeActiveAsync(_timeout.Token));
        Assert.Equal(frozen.Self, e.Silo);
        await cluster[0].WaitForAsync(v => v.ActiveSilos.Count == 2, _timeout.Token);
    }

    [Fact]
    public async Task A_dead_identity_never_rejoins_but_a_new_generation_does()
    {
        var cluster = await StartClusterAsync(2);
        var old = cluster[1].Self;
        await CrashAsync(cluster[1]);
        await cluster[0].WaitForAsync(v => v.GetStatus(old) == SiloStatus.Dead, _timeout.Token);

        await using (var again = new MembershipService(old, _table, _network, FastOptions()))
        {
            var e = await Assert.ThrowsAsync<SiloDeclaredDeadException>(() => again.StartAsync(_timeout.Token));
            Assert.Contains("new generation", e.Message);
        }

        var reborn = await StartAsync(new SiloAddress(old.Host, old.Port, old.Generation + 1));
        var view = await cluster[0].WaitForAsync(v => v.IsActive(reborn.Self), _timeout.Token);
        Assert.Equal(SiloStatus.Dead, view.GetStatus(old));
        Assert.Equal(2, view.ActiveSilos.Count);
    }

    [Fact]
    public async Task A_restart_on_the_same_endpoint_supersedes_the_old_generation_at_once()
    {
        var cluster = await StartClusterAsync(3);
        var old = cluster[2];
        _network.Unregister(old.Self);
        await old.DisposeAsync(); // crashed, not yet detected
        var reborn = await StartAsync(new SiloAddress(old.Self.Host, old.Self.Port, old.Self.Generation + 1));
        Assert.Equal(SiloStatus.Dead, reborn.Current.GetStatus(old.Self));
        var row = (await _table.ReadAllAsync(CancellationToken.None)).Find(old.Self)!;
        Assert.Equal(SiloStatus.Dead, row.Entry.Status);
        await cluster[0].WaitForAsync(v => v.IsActive(reborn.Self) && v.GetStatus(old.Self) == SiloStatus.Dead, _timeout.Token);
    }

    [Fact]
    public async Task An_older_generation_cannot_start_after_a_newer_one()
    {
        await StartAsync(Silo(9200, generation: 5));
        await using var stale = new MembershipService(Silo(9200, generation: 4), _table, _network, FastOptions());
        var e = await Assert.ThrowsAsync<SiloDeclaredDeadException>(() => stale.StartAsync(_timeout.Token));
        Assert.Contains("superseded", e.Message);
    }

    [Fact]
    public async Task A_graceful_shutdown_writes_dead_without_votes()
    {
        var cluster = await StartClusterAsync(3);
        var leaving = cluster[0];
        await leaving.ShutdownAsync(_timeout.Token);
        var view = await cluster[1].WaitForAsync(v => v.GetStatus(leaving.Self) == SiloStatus.Dead, _timeout.Token);
        Assert.Equal(2, view.ActiveSilos.Count);
        Assert.Empty(view.Entries[leaving.Self].Suspicions);
        Assert.False(leaving.IsDeclaredDead || cluster[1].IsDeclaredDead);
    }

    [Fact]
    public async Task A_silo_that_crashes_while_joining_is_declared_dead_from_its_stale_heartbeat()
    {
        var cluster = await StartClusterAsync(2);
        var joiner = await StartAsync(Silo(9300), active: false);
        await cluster[0].WaitForAsync(v => v.GetStatus(joiner.Self) == SiloStatus.Joining, _timeout.Token);
        await CrashAsync(joiner); // Joining silos are not probed: only the heartbeat rule can catch this
        await cluster[0].WaitForAsync(v => v.GetStatus(joiner.Self) == SiloStatus.Dead, _timeout.Token);
    }

    [Fact]
    public async Task Status_moves_forward_only_and_start_is_once()
    {
        var silo = await StartAsync(Silo(9400));
        await silo.BecomeActiveAsync(_timeout.Token); // already Active: no-op
        await silo.BeginShutdownAsync(_timeout.Token);
        await silo.BecomeActiveAsync(_timeout.Token); // backwards: ignored
        Assert.Equal(SiloStatus.ShuttingDown, silo.Current.GetStatus(silo.Self));
        await Assert.ThrowsAsync<InvalidOperationException>(() => silo.StartAsync(_timeout.Token));
        await using var unstarted = new MembershipService(Silo(9401), _table, _network, FastOptions());
        await Assert.ThrowsAsync<InvalidOperationException>(() => unstarted.BecomeActiveAsync(_timeout.Token));
    }

    [Fact]
    public async Task WaitFor_honours_cancellation()
    {
        var silo = await StartAsync(Silo(9500));
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => silo.WaitForAsync(v => v.ActiveSilos.Count == 99, cts.Token));
    }

    [Theory]
    [InlineData(nameof(MembershipOptions.ProbeTimeout))]
    [InlineData(nameof(MembershipOptions.NumProbedSilos))]
    [InlineData(nameof(MembershipOptions.NumMissedProbesLimit))]
    [InlineData(nameof(MembershipOptions.NumVotesForDeathDeclaration))]
    [InlineData(nameof(MembershipOptions.DeathVoteExpirationTimeout))]
    [InlineData(nameof(MembershipOptions.IAmAlivePublishPeriod))]
    [InlineData(nameof(MembershipOptions.NumMissedTableIAmAliveLimit))]
    [InlineData(nameof(MembershipOptions.TableVersionPollPeriod))]
    [InlineData(nameof(MembershipOptions.TableRefreshTimeout))]
    [InlineData(nameof(MembershipOptions.MaxJoinAttemptTime))]
    [InlineData(nameof(MembershipOptions.DefunctSiloExpiration))]
    public void Invalid_options_are_rejected_by_name(string option)
    {
        var options = new MembershipOptions();
        var property = typeof(MembershipOptions).GetProperty(option)!;
        property.SetValue(options, property.PropertyType == typeof(int) ? 0 : TimeSpan.FromSeconds(-1));
        var e = Assert.Throws<ArgumentException>(() => new MembershipService(Silo(1), _table, _network, options));
        Assert.Contains("MembershipOptions." + option, e.Message);
    }

    [Fact]
    public void Votes_expire()
    {
        var t0 = DateTimeOffset.UnixEpoch;
        var entry = new MembershipEntry(Silo(1), SiloStatus.Active, t0, t0,
            [new SuspicionVote(Silo(2), t0), new SuspicionVote(Silo(3), t0.AddSeconds(100))]);
        Assert.Equal([Silo(3)], entry.FreshVotes(t0.AddSeconds(150), TimeSpan.FromSeconds(60)).Select(v => v.Voter));
    }

    /// <inheritdoc />
    public Task InitializeAsync() => Task.CompletedTask;

    /// <inheritdoc />
    public async Task DisposeAsync()
    {
        foreach (var s in _services)
            await s.DisposeAsync();
        _timeout.Dispose();
    }
}
