using Npgsql;
using Xunit;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace MigrationFabric.Grains.Tests.Storage;

/// <summary>Decides whether PostgreSQL tests run: MF_TEST_POSTGRES set -> run; unset -> skip loudly, except under CI=true -> fail.</summary>
public static class PostgresGate
{
    /// <summary>The Npgsql connection string variable tests/run.sh exports.</summary>
    public const string Variable = "MF_TEST_POSTGRES";

    /// <summary>The server's connection string, or null.</summary>
    public static string? ConnectionString => Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } s ? s : null;

    /// <summary>True under CI, where a missing server is a failure, not a skip.</summary>
    public static bool IsCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    /// <summary>The skip reason, or null when the tests must run (server given, or CI).</summary>
    public static string? SkipReason => ConnectionString is null && !IsCi
        ? $"!!!!! POSTGRESQL TESTS SKIPPED: {Variable} is not set. Run tests/run.sh (it starts a real PostgreSQL and sets {Variable}) !!!!!"
        : null;

    /// <summary>The connection string, or a clear failure (CI without a server).</summary>
    public static string RequireConnectionString() => ConnectionString ?? throw new InvalidOperationException(
        $"{Variable} is not set but CI=true: the PostgreSQL tests must run in CI. tests/run.sh starts PostgreSQL and exports {Variable}.");
}

/// <summary>A fact that needs PostgreSQL: skipped loudly without MF_TEST_POSTGRES, failing under CI=true.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class PostgresFactAttribute : FactAttribute
{
    /// <summary>Sets Skip from <see cref="PostgresGate.SkipReason"/>.</summary>
    public PostgresFactAttribute()
    {
        if (PostgresGate.SkipReason is { } reason)
            Skip = reason;
    }
}

/// <summary>Marks a test class whose store is PostgreSQL, so its inherited <see cref="StoreFactAttribute"/> tests follow <see cref="PostgresGate"/>.</summary>
[AttributeUsage(AttributeTargets.Class)]
public sealed class PostgresStoreAttribute : Attribute;

/// <summary>A fact of a store contract (abstract base class): runs per concrete store, PostgreSQL ones gated by <see cref="PostgresGate"/>.</summary>
[XunitTestCaseDiscoverer("MigrationFabric.Grains.Tests.Storage.StoreFactDiscoverer", "MigrationFabric.Grains.Tests")]
[AttributeUsage(AttributeTargets.Method)]
public sealed class StoreFactAttribute : FactAttribute;

/// <summary>Discovers <see cref="StoreFactAttribute"/> tests as <see cref="StoreTestCase"/>s.</summary>
public sealed class StoreFactDiscoverer(IMessageSink diagnostics) : IXunitTestCaseDiscoverer
{
    /// <inheritdoc />
    public IEnumerable<IXunitTestCase> Discover(ITestFrameworkDiscoveryOptions discoveryOptions, ITestMethod testMethod, IAttributeInfo factAttribute)
    {
        yield return new StoreTestCase(diagnostics, discoveryOptions.MethodDisplayOrDefault(), discoveryOptions.MethodDisplayOptionsOrDefault(), testMethod);
    }
}

/// <summary>A test case whose skip reason depends on the concrete test class's store.</summary>
public sealed class StoreTestCase : XunitTestCase
{
    /// <summary>For the deserializer.</summary>
    [Obsolete("Called by the de-serializer; should only be called by deriving classes for de-serialization purposes")]
    public StoreTestCase() { }

    /// <summary>Creates the case.</summary>
    public StoreTestCase(IMessageSink sink, TestMethodDisplay display, TestMethodDisplayOptions options, ITestMethod method)
        : base(sink, display, options, method) { }

    /// <inheritdoc />
    protected override string GetSkipReason(IAttributeInfo factAttribute)
    {
        bool postgres = TestMethod.TestClass.Class.GetCustomAttributes(typeof(PostgresStoreAttribute).AssemblyQualifiedName).Any();
        return (postgres ? PostgresGate.SkipReason : null) ?? base.GetSkipReason(factAttribute);
    }
}

/// <summary>A fresh database per test class on the server of MF_TEST_POSTGRES, dropped afterwards.</summary>
public sealed class PostgresTestDatabase : IAsyncLifetime
{
    private string? _connectionString;
    private string? _adminConnectionString;
    private string? _name;

    /// <summary>The connection string of the fresh database (throws a clear error when there is no server).</summary>
    public string ConnectionString => _connectionString ?? PostgresGate.RequireConnectionString();

    /// <inheritdoc />
    public async Task InitializeAsync()
    {
        if (PostgresGate.ConnectionString is not { } admin)
            return;
        _adminConnectionString = admin;
        _name = "mf_grains_" + Guid.NewGuid().ToString("N")[..12];
        await using (var connection = new NpgsqlConnection(admin))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand($"CREATE DATABASE {_name}", connection);
            await command.ExecuteNonQueryAsync();
        }
        _connectionString = new NpgsqlConnectionStringBuilder(admin) { Database = _name }.ConnectionString;
    }

    /// <inheritdoc />
    public async Task DisposeAsync()
    {
        if (_adminConnectionString is null || _name is null)
            return;
        NpgsqlConnection.ClearAllPools();
        await using var connection = new NpgsqlConnection(_adminConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"DROP DATABASE IF EXISTS {_name} WITH (FORCE)", connection);
        await command.ExecuteNonQueryAsync();
    }
}

/// <summary>A directory of SQLite files for one test class, deleted afterwards.</summary>
public sealed class TempDirectory : IDisposable
{
    /// <summary>The directory.</summary>
    public string Path { get; } = Directory.CreateDirectory(System.IO.Path.Combine(System.IO.Path.GetTempPath(), "mf-grains-" + Guid.NewGuid().ToString("N")[..12])).FullName;

    /// <summary>A fresh file path inside the directory.</summary>
    public string NewFile(string name = "store") => System.IO.Path.Combine(Path, $"{name}-{Guid.NewGuid():N}.db");

    /// <inheritdoc />
    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // A pooled handle may still be closing; the OS temp cleaner gets it.
        }
    }
}
