using Microsoft.Data.Sqlite;

namespace MigrationFabric.Grains.Storage;

/// <summary>Connection handling shared by the SQLite stores: WAL journal, busy timeout, schema creation.</summary>
internal static class SqliteStore
{
    /// <summary>Default wait for another process's write lock (SQLite busy timeout).</summary>
    public static readonly TimeSpan DefaultBusyTimeout = TimeSpan.FromSeconds(30);

    public static string ConnectionString(string path, TimeSpan? busyTimeout)
    {
        var timeout = busyTimeout ?? DefaultBusyTimeout;
        if (timeout <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(busyTimeout), timeout, "SQLite busy timeout must be positive.");
        return new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Cache = SqliteCacheMode.Private,
            Pooling = true,
            DefaultTimeout = (int)Math.Ceiling(timeout.TotalSeconds),
        }.ToString();
    }

    public static async Task<SqliteConnection> OpenAsync(string connectionString, CancellationToken cancellationToken)
    {
        var connection = new SqliteConnection(connectionString);
        try
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            // SQLite's own busy handler retries a locked file within milliseconds; without it the
            // provider's coarse retry lets one process run whole bursts while the others sleep.
            // synchronous=FULL is stated, not assumed from the build: a commit must survive power loss.
            await using (var pragma = connection.CreateCommand())
            {
                pragma.CommandText = $"PRAGMA busy_timeout = {connection.DefaultTimeout * 1000}; PRAGMA synchronous = FULL;";
                await pragma.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
            return connection;
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Switches the file to WAL and runs <paramref name="schemaSql"/> in one write transaction.</summary>
    public static async Task InitializeAsync(string connectionString, string schemaSql, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(connectionString, cancellationToken).ConfigureAwait(false);
        await using (var wal = connection.CreateCommand())
        {
            // WAL lets readers in other processes proceed while one process writes; the mode is stored in the file.
            wal.CommandText = "PRAGMA journal_mode=WAL;";
            var mode = (string?)await wal.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
            if (!string.Equals(mode, "wal", StringComparison.OrdinalIgnoreCase))
                throw new InvalidOperationException($"SQLite file '{connection.DataSource}' refused WAL journal mode (got '{mode}').");
        }
        // BEGIN IMMEDIATE: take the write lock up front so two processes never deadlock upgrading read locks.
        await using var transaction = connection.BeginTransaction(deferred: false);
        await using (var schema = connection.CreateCommand())
        {
            schema.Transaction = transaction;
            schema.CommandText = schemaSql;
            await schema.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
    }
}
