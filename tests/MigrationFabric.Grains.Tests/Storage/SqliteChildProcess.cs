using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using MigrationFabric.Grains.Membership;
using MigrationFabric.Grains.Storage;

namespace MigrationFabric.Grains.Tests.Storage;

/// <summary>Lets this test assembly run as a separate writer process against a SQLite file (started by <see cref="SqliteMultiProcessTests"/>).</summary>
/// <remarks>
/// The test SDK gives the assembly an empty Main; a module initializer runs before it, so
/// <c>dotnet MigrationFabric.Grains.Tests.dll</c> with <see cref="RoleVariable"/> set becomes the writer.
/// The writer is fully synchronous: it runs inside the module initializer, where other threads
/// touching this assembly would wait for it.
/// </remarks>
internal static class SqliteChildProcess
{
    public const string RoleVariable = "MF_GRAINS_TEST_SQLITE_WRITER";

    /// <summary>Set to a file path: the process takes the write lock, changes the version row without committing, and waits to be killed.</summary>
    public const string HolderVariable = "MF_GRAINS_TEST_SQLITE_HOLDER";

#pragma warning disable CA2255 // A test-assembly entry hook, not a library initializer.
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void RunWriterIfAsked()
    {
        string? spec = Environment.GetEnvironmentVariable(RoleVariable);
        string? holder = Environment.GetEnvironmentVariable(HolderVariable);
        if (string.IsNullOrEmpty(spec) && string.IsNullOrEmpty(holder))
            return;
        int code;
        try
        {
            if (!string.IsNullOrEmpty(holder))
            {
                code = HoldWriteLock(holder);
            }
            else
            {
                var parts = spec!.Split('|');
                code = RunWriter(parts[0], parts[1], int.Parse(parts[2], CultureInfo.InvariantCulture), int.Parse(parts[3], CultureInfo.InvariantCulture));
            }
        }
        catch (Exception e)
        {
            Console.Error.WriteLine(e);
            code = 2;
        }
        Environment.Exit(code);
    }

    private static int HoldWriteLock(string path)
    {
        using var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={path};Pooling=False");
        connection.Open();
        using var transaction = connection.BeginTransaction(deferred: false);
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = "UPDATE mf_membership_version SET version = version + 100";
        command.ExecuteNonQuery();
        Console.WriteLine("holding");
        Console.ReadLine(); // killed here
        return 4;
    }

    /// <summary>Waits for "go" on stdin, then wins <paramref name="count"/> membership CASes and <paramref name="count"/> state increments.</summary>
    private static int RunWriter(string path, string cluster, int writerId, int count)
    {
        var table = new SqliteMembershipTable(path, cluster);
        var storage = new SqliteGrainStorage(path);
        Warm(table, storage); // so the writers overlap instead of one finishing while another still JITs
        Console.WriteLine("ready");
        if (Console.ReadLine() != "go")
            return 3;
        int conflicts = CasVotes(table, writerId, count) + Increments(storage, count);
        Console.WriteLine($"done {conflicts}");
        return 0;
    }

    /// <summary>Runs each code path once without writing.</summary>
    public static void Warm(IMembershipTable table, IGrainStorage storage)
    {
        table.ReadAllAsync(CancellationToken.None).GetAwaiter().GetResult();
        table.UpdateRowAsync(new MembershipEntry(Target, SiloStatus.Active, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch), "no-such-etag",
            new TableVersion(long.MaxValue, "x"), CancellationToken.None).GetAwaiter().GetResult();
        storage.ReadAsync(CounterKey, CancellationToken.None).GetAwaiter().GetResult();
        try
        {
            storage.WriteAsync(CounterKey, "0"u8.ToArray(), "no-such-etag", CancellationToken.None).GetAwaiter().GetResult();
        }
        catch (InconsistentStateException)
        {
            // expected: this only warms the write path
        }
    }

    public static SiloAddress Target => new("127.0.0.1", 1, 1);

    public static GrainStateKey CounterKey => new("counter", "shared");

    /// <summary>Appends <paramref name="count"/> votes to the target row, each through a won CAS; returns lost races.</summary>
    public static int CasVotes(IMembershipTable table, int writerId, int count)
    {
        int lost = 0;
        for (int won = 0; won < count;)
        {
            var data = table.ReadAllAsync(CancellationToken.None).GetAwaiter().GetResult();
            var row = data.Find(Target) ?? throw new InvalidOperationException("target row missing");
            var votes = row.Entry.Suspicions.ToList();
            votes.Add(new SuspicionVote(new SiloAddress("127.0.0.1", 100 + writerId, won + 1), DateTimeOffset.UnixEpoch));
            if (table.UpdateRowAsync(row.Entry with { Suspicions = votes }, row.Etag, data.Version.Next(), CancellationToken.None).GetAwaiter().GetResult())
                won++;
            else
                lost++;
        }
        return lost;
    }

    /// <summary>Increments the shared counter <paramref name="count"/> times with etag checks; returns lost races.</summary>
    public static int Increments(IGrainStorage storage, int count)
    {
        int lost = 0;
        for (int done = 0; done < count;)
        {
            var record = storage.ReadAsync(CounterKey, CancellationToken.None).GetAwaiter().GetResult();
            int value = record.Exists ? int.Parse(Encoding.ASCII.GetString(record.Data.Span), CultureInfo.InvariantCulture) : 0;
            try
            {
                storage.WriteAsync(CounterKey, Encoding.ASCII.GetBytes((value + 1).ToString(CultureInfo.InvariantCulture)), record.Etag, CancellationToken.None)
                    .GetAwaiter().GetResult();
                done++;
            }
            catch (InconsistentStateException)
            {
                lost++;
            }
        }
        return lost;
    }

    /// <summary>Starts this assembly as a writer process.</summary>
    public static Process Start(string path, string cluster, int writerId, int count) =>
        StartRole(RoleVariable, string.Join('|', path, cluster, writerId.ToString(CultureInfo.InvariantCulture), count.ToString(CultureInfo.InvariantCulture)));

    /// <summary>Starts this assembly as a process that holds the write lock of <paramref name="path"/> mid-transaction.</summary>
    public static Process StartHolder(string path) => StartRole(HolderVariable, path);

    private static Process StartRole(string variable, string value)
    {
        string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host
            : Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet" ? Environment.ProcessPath! : "dotnet";
        var start = new ProcessStartInfo(dotnet)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("exec");
        start.ArgumentList.Add(typeof(SqliteChildProcess).Assembly.Location);
        start.Environment[variable] = value;
        return Process.Start(start) ?? throw new InvalidOperationException($"Could not start '{dotnet}'.");
    }
}
