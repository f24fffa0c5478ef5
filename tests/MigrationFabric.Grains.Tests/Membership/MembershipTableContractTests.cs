using MigrationFabric.Grains.Membership;
using MigrationFabric.Grains.Storage;
using MigrationFabric.Grains.Tests.Storage;
using Xunit;

namespace MigrationFabric.Grains.Tests.Membership;

/// <summary>The behaviour every <see cref="IMembershipTable"/> must have, plus liveness over it; one subclass per store.</summary>
public abstract class MembershipTableContractTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 21, 12, 0, 0, TimeSpan.Zero);

    /// <summary>A fresh, initialized table for the cluster <paramref name="clusterId"/>; the same id gives the same table.</summary>
    protected abstract Task<IMembershipTable> OpenTableAsync(string clusterId);

    private Task<IMembershipTable> NewTableAsync() => OpenTableAsync("c-" + Guid.NewGuid().ToString("N")[..10]);

    private static SiloAddress Silo(int port, long generation = 1) => new("127.0.0.1", port, generation);

    private static MembershipEntry Entry(SiloAddress silo, SiloStatus status = SiloStatus.Joining) =>
        new(silo, status, T0, T0, [], "silo-" + silo.Port);

    [StoreFact]
    public async Task A_fresh_table_is_empty_at_version_zero()
    {
        var table = await NewTableAsync();
        var data = await table.ReadAllAsync(CancellationToken.None);
        Assert.Empty(data.Rows);
        Assert.Equal(0, data.Version.Version);
        Assert.Equal(0, (await table.ReadVersionAsync(CancellationToken.None)).Version);
    }

    [StoreFact]
    public async Task Initialize_twice_keeps_the_rows()
    {
        string cluster = "c-" + Guid.NewGuid().ToString("N")[..10];
        var table = await OpenTableAsync(cluster);
        Assert.True(await table.InsertRowAsync(Entry(Silo(1)), new TableVersion(1, "0"), CancellationToken.None));
        await table.InitializeAsync(CancellationToken.None);
        var data = await table.ReadAllAsync(CancellationToken.None);
        Assert.Single(data.Rows);
        Assert.Equal(1, data.Version.Version);
    }

    [StoreFact]
    public async Task Insert_moves_the_version_and_rejects_duplicates_and_stale_versions()
    {
        var table = await NewTableAsync();
        var data = await table.ReadAllAsync(CancellationToken.None);
        Assert.True(await table.InsertRowAsync(Entry(Silo(1)), data.Version.Next(), CancellationToken.None));
        // Same version again: stale.
        Assert.False(await table.InsertRowAsync(Entry(Silo(2)), data.Version.Next(), CancellationToken.None));
        data = await table.ReadAllAsync(CancellationToken.None);
        Assert.Equal(1, data.Version.Version);
        // Right version, existing row: rejected and the version does not move.
        Assert.False(await table.InsertRowAsync(Entry(Silo(1)), data.Version.Next(), CancellationToken.None));
        Assert.Equal(1, (await table.ReadVersionAsync(CancellationToken.None)).Version);
        // A version from the future is stale too.
        Assert.False(await table.InsertRowAsync(Entry(Silo(2)), new TableVersion(5, "4"), CancellationToken.None));
        Assert.True(await table.InsertRowAsync(Entry(Silo(2)), data.Version.Next(), CancellationToken.None));
        Assert.Equal(2, (await table.ReadAllAsync(CancellationToken.None)).Rows.Count);
    }

    [StoreFact]
    public async Task Update_needs_both_the_row_etag_and_the_table_version()
    {
        var table = await NewTableAsync();
        var a = Silo(1);
        Assert.True(await table.InsertRowAsync(Entry(a), new TableVersion(1, "0"), CancellationToken.None));
        var data = await table.ReadAllAsync(CancellationToken.None);
        var row = data.Find(a)!;

        Assert.False(await table.UpdateRowAsync(Entry(a, SiloStatus.Active), "bogus-etag", data.Version.Next(), CancellationToken.None));
        Assert.False(await table.UpdateRowAsync(Entry(a, SiloStatus.Active), row.Etag, data.Version, CancellationToken.None));
        Assert.False(await table.UpdateRowAsync(Entry(Silo(9), SiloStatus.Active), row.Etag, data.Version.Next(), CancellationToken.None));
        Assert.True(await table.UpdateRowAsync(Entry(a, SiloStatus.Active), row.Etag, data.Version.Next(), CancellationToken.None));

        var after = await table.ReadAllAsync(CancellationToken.None);
        Assert.Equal(2, after.Version.Version);
        Assert.Equal(SiloStatus.Active, after.Find(a)!.Entry.Status);
        Assert.NotEqual(row.Etag, after.Find(a)!.Etag);
        // The old etag is now stale even with the current version.
        Assert.False(await table.UpdateRowAsync(Entry(a, SiloStatus.Dead), row.Etag, after.Version.Next(), CancellationToken.None));
    }

    [StoreFact]
    public async Task Two_writers_of_the_same_read_one_wins()
    {
        var table = await NewTableAsync();
        Assert.True(await table.InsertRowAsync(Entry(Silo(1)), new TableVersion(1, "0"), CancellationToken.None));
        Assert.True(await table.InsertRowAsync(Entry(Silo(2)), new TableVersion(2, "1"), CancellationToken.None));
        var data = await table.ReadAllAsync(CancellationToken.None);
        // Different rows, same table version: the version row makes them conflict.
        bool first = await table.UpdateRowAsync(Entry(Silo(1), SiloStatus.Active), data.Find(Silo(1))!.Etag, data.Version.Next(), CancellationToken.None);
        bool second = await table.UpdateRowAsync(Entry(Silo(2), SiloStatus.Active), data.Find(Silo(2))!.Etag, data.Version.Next(), CancellationToken.None);
        Assert.True(first);
        Assert.False(second);
    }

    [StoreFact]
    public async Task Concurrent_writers_on_threads_each_version_is_won_exactly_once()
    {
        var table = await NewTableAsync();
        var target = Silo(1);
        Assert.True(await table.InsertRowAsync(Entry(target), new TableVersion(1, "0"), CancellationToken.None));
        const int writers = 4, votesEach = 10;
        var wonVersions = new System.Collections.Concurrent.ConcurrentBag<long>();
        using var start = new Barrier(writers);
        var threads = Enumerable.Range(0, writers).Select(w => Task.Factory.StartNew(async () =>
        {
            start.SignalAndWait();
            long lastSeen = 0;
            for (int won = 0; won < votesEach;)
            {
                var data = await table.ReadAllAsync(CancellationToken.None);
                Assert.True(data.Version.Version >= lastSeen, "the table version went backwards");
                lastSeen = data.Version.Version;
                var row = data.Find(target)!;
                var votes = row.Entry.Suspicions.ToList();
                votes.Add(new SuspicionVote(Silo(100 + w), T0.AddTicks(won)));
                if (await table.UpdateRowAsync(row.Entry with { Suspicions = votes }, row.Etag, data.Version.Next(), CancellationToken.None))
                {
                    wonVersions.Add(data.Version.Next().Version);
                    won++;
                }
            }
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap()).ToArray();
        await Task.WhenAll(threads).WaitAsync(TimeSpan.FromSeconds(60));

        var final = await table.ReadAllAsync(CancellationToken.None);
        Assert.Equal(1 + writers * votesEach, final.Version.Version);
        Assert.Equal(writers * votesEach, final.Find(target)!.Entry.Suspicions.Count); // no lost update
        Assert.Equal(Enumerable.Range(2, writers * votesEach).Select(v => (long)v), wonVersions.Order());
    }

    [StoreFact]
    public async Task Rows_round_trip_exactly()
    {
        var table = await NewTableAsync();
        var silo = new SiloAddress("node-a.example", 40123, 638_999_999_999_999_999);
        var votes = new[] { new SuspicionVote(Silo(2, 7), T0.AddTicks(12345)), new SuspicionVote(Silo(3, 8), T0.AddSeconds(1)) };
        var entry = new MembershipEntry(silo, SiloStatus.ShuttingDown, T0.AddTicks(1), T0.AddTicks(3), votes, "host a");
        Assert.True(await table.InsertRowAsync(entry, new TableVersion(1, "0"), CancellationToken.None));
        var read = (await table.ReadAllAsync(CancellationToken.None)).Find(silo)!.Entry;
        Assert.Equal(silo, read.Silo);
        Assert.Equal(SiloStatus.ShuttingDown, read.Status);
        Assert.Equal(entry.StartTime, read.StartTime);
        Assert.Equal(entry.IAmAliveTime, read.IAmAliveTime);
        Assert.Equal("host a", read.SiloName);
        Assert.Equal(votes, read.Suspicions);
    }

    [StoreFact]
    public async Task Heartbeats_move_neither_etag_nor_version()
    {
        var table = await NewTableAsync();
        var a = Silo(1);
        Assert.True(await table.InsertRowAsync(Entry(a), new TableVersion(1, "0"), CancellationToken.None));
        var before = await table.ReadAllAsync(CancellationToken.None);
        await table.UpdateIAmAliveAsync(a, T0.AddMinutes(5), CancellationToken.None);
        var after = await table.ReadAllAsync(CancellationToken.None);
        Assert.Equal(before.Version.Version, after.Version.Version);
        Assert.Equal(before.Find(a)!.Etag, after.Find(a)!.Etag);
        Assert.Equal(T0.AddMinutes(5), after.Find(a)!.Entry.IAmAliveTime);

        var e = await Assert.ThrowsAsync<MembershipTableException>(() => table.UpdateIAmAliveAsync(Silo(77), T0, CancellationToken.None));
        Assert.Contains(Silo(77).ToString(), e.Message);
    }

    [StoreFact]
    public async Task An_update_from_an_older_read_does_not_undo_a_heartbeat()
    {
        var table = await NewTableAsync();
        var a = Silo(1);
        Assert.True(await table.InsertRowAsync(Entry(a), new TableVersion(1, "0"), CancellationToken.None));
        var data = await table.ReadAllAsync(CancellationToken.None);
        await table.UpdateIAmAliveAsync(a, T0.AddMinutes(2), CancellationToken.None);
        await table.UpdateIAmAliveAsync(a, T0.AddMinutes(1), CancellationToken.None); // late, out-of-order heartbeat
        var row = data.Find(a)!;
        Assert.True(await table.UpdateRowAsync(row.Entry with { Status = SiloStatus.Active }, row.Etag, data.Version.Next(), CancellationToken.None));
        var after = (await table.ReadAllAsync(CancellationToken.None)).Find(a)!.Entry;
        Assert.Equal(SiloStatus.Active, after.Status);
        Assert.Equal(T0.AddMinutes(2), after.IAmAliveTime);
    }

    [StoreFact]
    public async Task Cleanup_removes_only_old_dead_rows()
    {
        var table = await NewTableAsync();
        var entries = new[]
        {
            Entry(Silo(1), SiloStatus.Dead) with { IAmAliveTime = T0.AddDays(-10) },
            Entry(Silo(2), SiloStatus.Dead) with { IAmAliveTime = T0 },
            Entry(Silo(3), SiloStatus.Active) with { IAmAliveTime = T0.AddDays(-10) },
        };
        for (int i = 0; i < entries.Length; i++)
            Assert.True(await table.InsertRowAsync(entries[i], new TableVersion(i + 1, i.ToString()), CancellationToken.None));
        Assert.Equal(1, await table.CleanupDefunctEntriesAsync(T0.AddDays(-1), CancellationToken.None));
        var rows = (await table.ReadAllAsync(CancellationToken.None)).Rows.Select(r => r.Entry.Silo).Order().ToList();
        Assert.Equal([Silo(2), Silo(3)], rows);
    }

    [StoreFact]
    public async Task Clusters_sharing_a_store_are_isolated()
    {
        string one = "c-" + Guid.NewGuid().ToString("N")[..10], two = "c-" + Guid.NewGuid().ToString("N")[..10];
        var a = await OpenTableAsync(one);
        var b = await OpenTableAsync(two);
        Assert.True(await a.InsertRowAsync(Entry(Silo(1)), new TableVersion(1, "0"), CancellationToken.None));
        Assert.Empty((await b.ReadAllAsync(CancellationToken.None)).Rows);
        Assert.Equal(0, (await b.ReadVersionAsync(CancellationToken.None)).Version);
        Assert.True(await b.InsertRowAsync(Entry(Silo(1)), new TableVersion(1, "0"), CancellationToken.None));
    }

    [StoreFact]
    public async Task Silos_starting_at_once_all_join_through_the_compare_and_swap()
    {
        string cluster = "c-" + Guid.NewGuid().ToString("N")[..10];
        var network = new InProcessProbeNetwork();
        var services = new List<MembershipService>();
        try
        {
            for (int i = 0; i < 4; i++)
            {
                var silo = Silo(7100 + i);
                network.Register(silo);
                services.Add(new MembershipService(silo, await OpenTableAsync(cluster), network, LivenessTests.FastOptions()));
            }
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await Task.WhenAll(services.Select(s => Task.Run(async () =>
            {
                await s.StartAsync(timeout.Token);
                await s.BecomeActiveAsync(timeout.Token);
            })));
            foreach (var s in services)
                await s.WaitForAsync(v => v.ActiveSilos.Count == 4, timeout.Token);
            var data = await (await OpenTableAsync(cluster)).ReadAllAsync(timeout.Token);
            Assert.Equal(8, data.Version.Version); // 4 inserts + 4 Joining -> Active, each its own version
        }
        finally
        {
            foreach (var s in services)
                await s.DisposeAsync();
        }
    }

    [StoreFact]
    public async Task Liveness_three_silos_one_crashes_and_is_declared_dead()
    {
        string cluster = "c-" + Guid.NewGuid().ToString("N")[..10];
        var network = new InProcessProbeNetwork();
        var services = new List<MembershipService>();
        try
        {
            for (int i = 0; i < 3; i++)
            {
                var silo = Silo(7000 + i);
                network.Register(silo);
                var service = new MembershipService(silo, await OpenTableAsync(cluster), network, LivenessTests.FastOptions());
                services.Add(service);
                await service.StartAsync(CancellationToken.None);
                await service.BecomeActiveAsync(CancellationToken.None);
            }
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            foreach (var s in services)
                await s.WaitForAsync(v => v.ActiveSilos.Count == 3, timeout.Token);

            var victim = services[2];
            network.Unregister(victim.Self);
            await victim.DisposeAsync();

            foreach (var s in services.Take(2))
            {
                var view = await s.WaitForAsync(v => v.GetStatus(victim.Self) == SiloStatus.Dead, timeout.Token);
                Assert.Equal(2, view.ActiveSilos.Count);
            }
            await Assert.ThrowsAsync<SiloDeclaredDeadException>(async () =>
            {
                await using var again = new MembershipService(victim.Self, await OpenTableAsync(cluster), network, LivenessTests.FastOptions());
                await again.StartAsync(CancellationToken.None);
            });
        }
        finally
        {
            foreach (var s in services)
                await s.DisposeAsync();
        }
    }
}

/// <summary>The table contract on <see cref="InMemoryMembershipTable"/>.</summary>
public sealed class InMemoryMembershipTableTests : MembershipTableContractTests
{
    private readonly Dictionary<string, InMemoryMembershipTable> _clusters = new();

    /// <inheritdoc />
    protected override Task<IMembershipTable> OpenTableAsync(string clusterId)
    {
        lock (_clusters)
        {
            if (!_clusters.TryGetValue(clusterId, out var table))
                _clusters[clusterId] = table = new InMemoryMembershipTable();
            return Task.FromResult<IMembershipTable>(table);
        }
    }
}

/// <summary>The table contract on <see cref="SqliteMembershipTable"/> (one file per test class, clusters per test).</summary>
public sealed class SqliteMembershipTableTests : MembershipTableContractTests, IClassFixture<TempDirectory>
{
    private readonly string _path;
    private readonly TempDirectory _dir;

    /// <summary>Creates the tests.</summary>
    public SqliteMembershipTableTests(TempDirectory dir)
    {
        _dir = dir;
        _path = dir.NewFile("membership");
    }

    /// <inheritdoc />
    protected override async Task<IMembershipTable> OpenTableAsync(string clusterId)
    {
        var table = new SqliteMembershipTable(_path, clusterId);
        await table.InitializeAsync(CancellationToken.None);
        return table;
    }

    [Fact]
    public async Task Reading_before_initialize_says_what_is_missing()
    {
        string path = _dir.NewFile("uninitialized");
        await new SqliteMembershipTable(path, "other").InitializeAsync(CancellationToken.None);
        var table = new SqliteMembershipTable(path, "never-initialized");
        var e = await Assert.ThrowsAsync<MembershipTableException>(() => table.ReadAllAsync(CancellationToken.None));
        Assert.Contains("InitializeAsync", e.Message);
        await Assert.ThrowsAsync<MembershipTableException>(() => table.ReadVersionAsync(CancellationToken.None));
    }

    [Fact]
    public async Task Reading_a_file_that_was_never_initialized_says_what_is_missing()
    {
        var table = new SqliteMembershipTable(_dir.NewFile("empty"), "c");
        var e = await Assert.ThrowsAsync<MembershipTableException>(() => table.ReadAllAsync(CancellationToken.None));
        Assert.Contains("InitializeAsync", e.Message);
        await Assert.ThrowsAsync<MembershipTableException>(() => table.ReadVersionAsync(CancellationToken.None));
    }

    [Theory]
    [InlineData("silo", "not-an-address", "malformed silo address 'not-an-address'")]
    [InlineData("status", "9", "unknown silo status 9")]
    [InlineData("suspicions", "127.0.0.1:2@1|notticks", "malformed suspicion vote")]
    [InlineData("suspicions", "garbage@@|5", "malformed suspicion vote")]
    public async Task A_corrupt_row_is_reported_naming_what_is_wrong(string column, string value, string expected)
    {
        var table = await OpenTableAsync("corrupt-" + column + value.Length);
        Assert.True(await table.InsertRowAsync(new MembershipEntry(new SiloAddress("127.0.0.1", 1, 1), SiloStatus.Active, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch),
            new TableVersion(1, "0"), CancellationToken.None));
        await using (var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={_path}"))
        {
            await connection.OpenAsync();
            await using var command = connection.CreateCommand();
            command.CommandText = $"UPDATE mf_membership SET {column} = $v WHERE cluster_id = $c";
            command.Parameters.AddWithValue("$v", column == "status" ? long.Parse(value, System.Globalization.CultureInfo.InvariantCulture) : value);
            command.Parameters.AddWithValue("$c", "corrupt-" + column + value.Length);
            Assert.Equal(1, await command.ExecuteNonQueryAsync());
        }
        var e = await Assert.ThrowsAsync<MembershipTableException>(() => table.ReadAllAsync(CancellationToken.None));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public async Task The_file_is_in_WAL_mode()
    {
        await OpenTableAsync("wal");
        await using var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={_path}");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA journal_mode";
        Assert.Equal("wal", (string?)await command.ExecuteScalarAsync());
    }

    [Fact]
    public async Task A_busy_file_makes_writers_wait_instead_of_failing()
    {
        var table = await OpenTableAsync("busy");
        // Another process-like holder takes the write lock for a moment.
        await using var holder = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={_path};Pooling=False");
        await holder.OpenAsync();
        var transaction = holder.BeginTransaction(deferred: false);
        var write = Task.Run(() => table.InsertRowAsync(new MembershipEntry(new SiloAddress("h", 1, 1), SiloStatus.Joining, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch),
            new TableVersion(1, "0"), CancellationToken.None));
        await Task.WhenAny(write, Task.Delay(200));
        Assert.False(write.IsCompleted, "the write should wait for the lock");
        transaction.Rollback();
        transaction.Dispose();
        Assert.True(await write.WaitAsync(TimeSpan.FromSeconds(30)));
    }
}

/// <summary>The table contract on <see cref="PostgresMembershipTable"/> against the real server of MF_TEST_POSTGRES.</summary>
[PostgresStore]
public sealed class PostgresMembershipTableTests : MembershipTableContractTests, IClassFixture<PostgresTestDatabase>, IAsyncLifetime
{
    private readonly PostgresTestDatabase _db;
    private readonly List<PostgresMembershipTable> _opened = [];

    /// <summary>Creates the tests.</summary>
    public PostgresMembershipTableTests(PostgresTestDatabase db) => _db = db;

    /// <inheritdoc />
    protected override async Task<IMembershipTable> OpenTableAsync(string clusterId)
    {
        var table = new PostgresMembershipTable(_db.ConnectionString, clusterId);
        lock (_opened)
            _opened.Add(table);
        await table.InitializeAsync(CancellationToken.None);
        return table;
    }

    [Fact] // needs no server: nothing listens on port 1
    public async Task An_unreachable_server_fails_clearly()
    {
        var table = new PostgresMembershipTable("Host=127.0.0.1;Port=1;Username=postgres;Timeout=2", "c");
        _opened.Add(table);
        await Assert.ThrowsAsync<Npgsql.NpgsqlException>(() => table.InitializeAsync(CancellationToken.None));
    }

    [PostgresFact]
    public async Task Schema_creation_races_safely()
    {
        var tables = Enumerable.Range(0, 4).Select(i => new PostgresMembershipTable(_db.ConnectionString, "race")).ToList();
        _opened.AddRange(tables);
        await Task.WhenAll(tables.Select(t => Task.Run(() => t.InitializeAsync(CancellationToken.None))));
        Assert.Equal(0, (await tables[3].ReadVersionAsync(CancellationToken.None)).Version);
    }

    /// <inheritdoc />
    public Task InitializeAsync() => Task.CompletedTask;

    /// <inheritdoc />
    public async Task DisposeAsync()
    {
        foreach (var t in _opened)
            await t.DisposeAsync();
    }
}
