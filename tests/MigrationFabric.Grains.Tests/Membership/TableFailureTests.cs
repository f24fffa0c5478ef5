using MigrationFabric.Grains.Membership;
using Xunit;

namespace MigrationFabric.Grains.Tests.Membership;

/// <summary>Membership when the table itself fails: start reports it, running loops ride it out.</summary>
public sealed class TableFailureTests
{
    private static SiloAddress Silo(int port) => new("127.0.0.1", port, 1);

    [Fact]
    public async Task Start_reports_a_table_that_cannot_be_read()
    {
        var table = new FailingTable(new InMemoryMembershipTable()) { Failing = true };
        await using var service = new MembershipService(Silo(1), table, new InProcessProbeNetwork(), LivenessTests.FastOptions());
        var e = await Assert.ThrowsAsync<MembershipTableException>(() => service.StartAsync(CancellationToken.None));
        Assert.Contains("table is down", e.Message);
    }

    [Fact]
    public async Task A_table_outage_is_ridden_out_and_changes_are_seen_after_it()
    {
        var shared = new InMemoryMembershipTable();
        var network = new InProcessProbeNetwork();
        var flaky = new FailingTable(shared);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        network.Register(Silo(1));
        network.Register(Silo(2));
        await using var watcher = new MembershipService(Silo(1), flaky, network, LivenessTests.FastOptions());
        await watcher.StartAsync(timeout.Token);
        await watcher.BecomeActiveAsync(timeout.Token);

        flaky.Failing = true; // heartbeats, polls and probes-turned-votes all fail for a while
        await using var other = new MembershipService(Silo(2), shared, network, LivenessTests.FastOptions());
        await other.StartAsync(timeout.Token);
        await other.BecomeActiveAsync(timeout.Token);
        await flaky.WaitForFailuresAsync(5, timeout.Token);
        Assert.False(watcher.Current.IsActive(Silo(2)));

        flaky.Failing = false;
        await watcher.WaitForAsync(v => v.IsActive(Silo(2)) && v.IsActive(Silo(1)), timeout.Token);
        Assert.False(watcher.IsDeclaredDead);
    }

    /// <summary>Passes calls through, or fails them all with a table error while <see cref="Failing"/>.</summary>
    private sealed class FailingTable(IMembershipTable inner) : IMembershipTable
    {
        private int _failures;
        private readonly SemaphoreSlim _failed = new(0);

        public volatile bool Failing;

        public async Task WaitForFailuresAsync(int count, CancellationToken cancellationToken)
        {
            for (int i = 0; i < count; i++)
                await _failed.WaitAsync(cancellationToken);
        }

        private Task<T> Run<T>(Func<Task<T>> call)
        {
            if (!Failing)
                return call();
            Interlocked.Increment(ref _failures);
            _failed.Release();
            return Task.FromException<T>(new MembershipTableException("the table is down (test)"));
        }

        public Task InitializeAsync(CancellationToken cancellationToken) => Run(async () => { await inner.InitializeAsync(cancellationToken); return 0; });

        public Task<MembershipTableData> ReadAllAsync(CancellationToken cancellationToken) => Run(() => inner.ReadAllAsync(cancellationToken));

        public Task<TableVersion> ReadVersionAsync(CancellationToken cancellationToken) => Run(() => inner.ReadVersionAsync(cancellationToken));

        public Task<bool> InsertRowAsync(MembershipEntry entry, TableVersion version, CancellationToken cancellationToken) =>
            Run(() => inner.InsertRowAsync(entry, version, cancellationToken));

        public Task<bool> UpdateRowAsync(MembershipEntry entry, string etag, TableVersion version, CancellationToken cancellationToken) =>
            Run(() => inner.UpdateRowAsync(entry, etag, version, cancellationToken));

        public Task UpdateIAmAliveAsync(SiloAddress silo, DateTimeOffset iAmAliveTime, CancellationToken cancellationToken) =>
            Run(async () => { await inner.UpdateIAmAliveAsync(silo, iAmAliveTime, cancellationToken); return 0; });

        public Task<int> CleanupDefunctEntriesAsync(DateTimeOffset olderThan, CancellationToken cancellationToken) =>
            Run(() => inner.CleanupDefunctEntriesAsync(olderThan, cancellationToken));
    }
}
