using System.Text;
using MigrationFabric.Grains.Storage;
using Xunit;

namespace MigrationFabric.Grains.Tests.Storage;

/// <summary>The behaviour every <see cref="IGrainStorage"/> must have; one concrete subclass per store.</summary>
public abstract class GrainStorageContractTests
{
    /// <summary>A fresh, initialized store for one test.</summary>
    protected abstract Task<IGrainStorage> CreateStorageAsync();

    private static GrainStateKey NewKey(string state = "vm") => new(state, "VmGrain/" + Guid.NewGuid().ToString("N"));

    private static byte[] Bytes(string s) => Encoding.UTF8.GetBytes(s);

    [StoreFact]
    public async Task Read_of_a_missing_record_says_missing()
    {
        var storage = await CreateStorageAsync();
        var record = await storage.ReadAsync(NewKey(), CancellationToken.None);
        Assert.False(record.Exists);
        Assert.Null(record.Etag);
        Assert.Equal(0, record.Data.Length);
    }

    [StoreFact]
    public async Task Write_then_read_round_trips_bytes_and_etag()
    {
        var storage = await CreateStorageAsync();
        var key = NewKey();
        string etag = await storage.WriteAsync(key, Bytes("one"), null, CancellationToken.None);
        var record = await storage.ReadAsync(key, CancellationToken.None);
        Assert.Equal(etag, record.Etag);
        Assert.Equal("one", Encoding.UTF8.GetString(record.Data.Span));

        string etag2 = await storage.WriteAsync(key, Bytes("two"), etag, CancellationToken.None);
        Assert.NotEqual(etag, etag2);
        record = await storage.ReadAsync(key, CancellationToken.None);
        Assert.Equal(etag2, record.Etag);
        Assert.Equal("two", Encoding.UTF8.GetString(record.Data.Span));
    }

    [StoreFact]
    public async Task Large_and_empty_payloads_round_trip()
    {
        var storage = await CreateStorageAsync();
        var big = new byte[1 << 20];
        new Random(7).NextBytes(big);
        var key = NewKey();
        await storage.WriteAsync(key, big, null, CancellationToken.None);
        var read = await storage.ReadAsync(key, CancellationToken.None);
        Assert.True(big.AsSpan().SequenceEqual(read.Data.Span));

        var empty = NewKey();
        await storage.WriteAsync(empty, ReadOnlyMemory<byte>.Empty, null, CancellationToken.None);
        var record = await storage.ReadAsync(empty, CancellationToken.None);
        Assert.True(record.Exists);
        Assert.Equal(0, record.Data.Length);
    }

    [StoreFact]
    public async Task Write_with_a_stale_etag_throws_and_keeps_the_winner()
    {
        var storage = await CreateStorageAsync();
        var key = NewKey();
        string first = await storage.WriteAsync(key, Bytes("a"), null, CancellationToken.None);
        string second = await storage.WriteAsync(key, Bytes("b"), first, CancellationToken.None);

        var e = await Assert.ThrowsAsync<InconsistentStateException>(() => storage.WriteAsync(key, Bytes("stale"), first, CancellationToken.None));
        Assert.Equal(first, e.ExpectedEtag);
        Assert.Equal(second, e.StoredEtag);
        Assert.Equal(key, e.Key);
        Assert.Contains(key.ToString(), e.Message);
        Assert.Equal("b", Encoding.UTF8.GetString((await storage.ReadAsync(key, CancellationToken.None)).Data.Span));
    }

    [StoreFact]
    public async Task Insert_when_a_record_exists_throws()
    {
        var storage = await CreateStorageAsync();
        var key = NewKey();
        string etag = await storage.WriteAsync(key, Bytes("a"), null, CancellationToken.None);
        var e = await Assert.ThrowsAsync<InconsistentStateException>(() => storage.WriteAsync(key, Bytes("b"), null, CancellationToken.None));
        Assert.Null(e.ExpectedEtag);
        Assert.Equal(etag, e.StoredEtag);
    }

    [StoreFact]
    public async Task Update_of_a_missing_record_throws()
    {
        var storage = await CreateStorageAsync();
        var e = await Assert.ThrowsAsync<InconsistentStateException>(() => storage.WriteAsync(NewKey(), Bytes("b"), "no-such-etag", CancellationToken.None));
        Assert.Null(e.StoredEtag);
    }

    [StoreFact]
    public async Task Clear_follows_the_etag_rules()
    {
        var storage = await CreateStorageAsync();
        var key = NewKey();
        await storage.ClearAsync(key, null, CancellationToken.None); // nothing there, nothing expected: fine
        string etag = await storage.WriteAsync(key, Bytes("a"), null, CancellationToken.None);
        await Assert.ThrowsAsync<InconsistentStateException>(() => storage.ClearAsync(key, null, CancellationToken.None));
        await Assert.ThrowsAsync<InconsistentStateException>(() => storage.ClearAsync(key, "stale", CancellationToken.None));
        await storage.ClearAsync(key, etag, CancellationToken.None);
        Assert.False((await storage.ReadAsync(key, CancellationToken.None)).Exists);
        await Assert.ThrowsAsync<InconsistentStateException>(() => storage.ClearAsync(key, etag, CancellationToken.None));
    }

    [StoreFact]
    public async Task An_etag_from_before_a_clear_never_matches_a_later_record()
    {
        var storage = await CreateStorageAsync();
        var key = NewKey();
        string old = await storage.WriteAsync(key, Bytes("a"), null, CancellationToken.None);
        await storage.ClearAsync(key, old, CancellationToken.None);
        string fresh = await storage.WriteAsync(key, Bytes("b"), null, CancellationToken.None);
        Assert.NotEqual(old, fresh);
        await Assert.ThrowsAsync<InconsistentStateException>(() => storage.WriteAsync(key, Bytes("stale"), old, CancellationToken.None));
    }

    [StoreFact]
    public async Task Keys_differing_in_state_name_or_grain_are_independent()
    {
        var storage = await CreateStorageAsync();
        var a = NewKey("vm");
        var b = new GrainStateKey("host", a.GrainId);
        await storage.WriteAsync(a, Bytes("a"), null, CancellationToken.None);
        await storage.WriteAsync(b, Bytes("b"), null, CancellationToken.None);
        Assert.Equal("a", Encoding.UTF8.GetString((await storage.ReadAsync(a, CancellationToken.None)).Data.Span));
        Assert.Equal("b", Encoding.UTF8.GetString((await storage.ReadAsync(b, CancellationToken.None)).Data.Span));
    }

    [StoreFact]
    public async Task Concurrent_read_modify_write_on_threads_loses_no_increment()
    {
        var storage = await CreateStorageAsync();
        var key = NewKey("counter");
        const int threads = 4, incrementsPerThread = 15;
        int conflicts = 0;
        var workers = Enumerable.Range(0, threads).Select(_ => Task.Factory.StartNew(async () =>
        {
            var state = new PersistentState<Counter>(key, storage);
            for (int done = 0; done < incrementsPerThread;)
            {
                await state.ReadStateAsync();
                state.State.Value++;
                try
                {
                    await state.WriteStateAsync();
                    done++;
                }
                catch (InconsistentStateException)
                {
                    Interlocked.Increment(ref conflicts);
                }
            }
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap()).ToArray();
        await Task.WhenAll(workers).WaitAsync(TimeSpan.FromSeconds(60));

        var final = new PersistentState<Counter>(key, storage);
        await final.ReadStateAsync();
        Assert.Equal(threads * incrementsPerThread, final.State.Value);
    }

    [StoreFact]
    public async Task PersistentState_round_trips_and_detects_a_concurrent_writer()
    {
        var storage = await CreateStorageAsync();
        var key = NewKey();
        var mine = new PersistentState<Counter>(key, storage);
        await mine.ReadStateAsync();
        Assert.False(mine.RecordExists);
        Assert.Null(mine.Etag);
        mine.State = new Counter { Value = 41, Name = "vm-1" };
        await mine.WriteStateAsync();
        Assert.True(mine.RecordExists);

        var theirs = new PersistentState<Counter>(key, storage);
        await theirs.ReadStateAsync();
        Assert.Equal(41, theirs.State.Value);
        Assert.Equal("vm-1", theirs.State.Name);
        Assert.Equal(mine.Etag, theirs.Etag);
        theirs.State.Value = 42;
        await theirs.WriteStateAsync();

        mine.State.Value = 99;
        await Assert.ThrowsAsync<InconsistentStateException>(() => mine.WriteStateAsync());
        await Assert.ThrowsAsync<InconsistentStateException>(() => mine.ClearStateAsync());
        await mine.ReadStateAsync();
        Assert.Equal(42, mine.State.Value);
        await mine.ClearStateAsync();
        Assert.False(mine.RecordExists);
        Assert.Equal(0, mine.State.Value);
        await theirs.ReadStateAsync();
        Assert.False(theirs.RecordExists);
    }

    [StoreFact]
    public async Task Corrupt_stored_state_gives_a_clear_error()
    {
        var storage = await CreateStorageAsync();
        var key = NewKey();
        await storage.WriteAsync(key, Bytes("{not json"), null, CancellationToken.None);
        var state = new PersistentState<Counter>(key, storage);
        var e = await Assert.ThrowsAsync<InvalidDataException>(() => state.ReadStateAsync());
        Assert.Contains(nameof(Counter), e.Message);
    }

    /// <summary>A small state type.</summary>
    public sealed class Counter
    {
        /// <summary>The count.</summary>
        public int Value { get; set; }

        /// <summary>A label.</summary>
        public string? Name { get; set; }
    }
}

/// <summary>The storage contract on <see cref="InMemoryGrainStorage"/>.</summary>
public sealed class InMemoryGrainStorageTests : GrainStorageContractTests
{
    /// <inheritdoc />
    protected override Task<IGrainStorage> CreateStorageAsync() => Task.FromResult<IGrainStorage>(new InMemoryGrainStorage());
}

/// <summary>The storage contract on <see cref="SqliteGrainStorage"/> (a file per test).</summary>
public sealed class SqliteGrainStorageTests : GrainStorageContractTests, IClassFixture<TempDirectory>
{
    private readonly TempDirectory _dir;

    /// <summary>Creates the tests.</summary>
    public SqliteGrainStorageTests(TempDirectory dir) => _dir = dir;

    /// <inheritdoc />
    protected override async Task<IGrainStorage> CreateStorageAsync()
    {
        var storage = new SqliteGrainStorage(_dir.NewFile("state"));
        await storage.InitializeAsync(CancellationToken.None);
        return storage;
    }

    [Fact]
    public async Task Two_instances_on_one_file_see_each_others_writes_and_conflicts()
    {
        string path = _dir.NewFile("shared");
        var a = new SqliteGrainStorage(path);
        var b = new SqliteGrainStorage(path);
        await Task.WhenAll(a.InitializeAsync(CancellationToken.None), b.InitializeAsync(CancellationToken.None));
        var key = new GrainStateKey("vm", "v1");
        string etag = await a.WriteAsync(key, new byte[] { 1 }, null, CancellationToken.None);
        Assert.Equal(etag, (await b.ReadAsync(key, CancellationToken.None)).Etag);
        await b.WriteAsync(key, new byte[] { 2 }, etag, CancellationToken.None);
        await Assert.ThrowsAsync<InconsistentStateException>(() => a.WriteAsync(key, new byte[] { 3 }, etag, CancellationToken.None));
    }

    [Fact]
    public async Task A_path_in_a_missing_directory_fails_clearly()
    {
        var storage = new SqliteGrainStorage(Path.Combine(_dir.Path, "no", "such", "dir", "x.db"));
        var e = await Assert.ThrowsAsync<Microsoft.Data.Sqlite.SqliteException>(() => storage.InitializeAsync(CancellationToken.None));
        Assert.Contains("unable to open", e.Message, StringComparison.OrdinalIgnoreCase);
    }
}

/// <summary>The storage contract on <see cref="PostgresGrainStorage"/> against the real server of MF_TEST_POSTGRES.</summary>
[PostgresStore]
public sealed class PostgresGrainStorageTests : GrainStorageContractTests, IClassFixture<PostgresTestDatabase>, IAsyncLifetime
{
    private readonly PostgresTestDatabase _db;
    private readonly List<PostgresGrainStorage> _opened = [];

    /// <summary>Creates the tests.</summary>
    public PostgresGrainStorageTests(PostgresTestDatabase db) => _db = db;

    /// <inheritdoc />
    protected override async Task<IGrainStorage> CreateStorageAsync()
    {
        var storage = new PostgresGrainStorage(_db.ConnectionString);
        _opened.Add(storage);
        await storage.InitializeAsync(CancellationToken.None);
        return storage;
    }

    [PostgresFact]
    public async Task Schema_creation_races_safely()
    {
        var stores = Enumerable.Range(0, 4).Select(_ => new PostgresGrainStorage(_db.ConnectionString)).ToList();
        _opened.AddRange(stores);
        await Task.WhenAll(stores.Select(s => Task.Run(() => s.InitializeAsync(CancellationToken.None))));
        var key = new GrainStateKey("vm", "race");
        await stores[0].WriteAsync(key, new byte[] { 1 }, null, CancellationToken.None);
        Assert.True((await stores[3].ReadAsync(key, CancellationToken.None)).Exists);
    }

    [Fact] // needs no server: nothing listens on port 1
    public async Task An_unreachable_server_fails_clearly()
    {
        var storage = new PostgresGrainStorage("Host=127.0.0.1;Port=1;Username=postgres;Timeout=2");
        _opened.Add(storage);
        await Assert.ThrowsAsync<Npgsql.NpgsqlException>(() => storage.InitializeAsync(CancellationToken.None));
    }

    /// <inheritdoc />
    public Task InitializeAsync() => Task.CompletedTask;

    /// <inheritdoc />
    public async Task DisposeAsync()
    {
        foreach (var s in _opened)
            await s.DisposeAsync();
    }
}
