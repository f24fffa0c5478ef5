using Microsoft.Data.Sqlite;

namespace MigrationFabric.Grains.Storage;

/// <summary>Grain state in a SQLite file (WAL): for several silo processes on one machine.</summary>
public sealed class SqliteGrainStorage : IGrainStorage
{
    private readonly string _connectionString;

    /// <summary>Creates the store over the file at <paramref name="path"/> (created when missing).</summary>
    public SqliteGrainStorage(string path, TimeSpan? busyTimeout = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        _connectionString = SqliteStore.ConnectionString(path, busyTimeout);
    }

    /// <inheritdoc />
    public Task InitializeAsync(CancellationToken cancellationToken) =>
        SqliteStore.InitializeAsync(_connectionString, """
            CREATE TABLE IF NOT EXISTS mf_grain_state (
                state_name TEXT NOT NULL,
                grain_id TEXT NOT NULL,
                data BLOB NOT NULL,
                etag TEXT NOT NULL,
                PRIMARY KEY (state_name, grain_id));
            """, cancellationToken);

    /// <inheritdoc />
    public async Task<GrainStateRecord> ReadAsync(GrainStateKey key, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(key);
        await using var connection = await SqliteStore.OpenAsync(_connectionString, cancellationToken).ConfigureAwait(false);
        await using var command = Command(connection, key, "SELECT data, etag FROM mf_grain_state WHERE state_name = $s AND grain_id = $g");
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            return GrainStateRecord.Missing;
        return new GrainStateRecord((byte[])reader.GetValue(0), reader.GetString(1));
    }

    /// <inheritdoc />
    public async Task<string> WriteAsync(GrainStateKey key, ReadOnlyMemory<byte> data, string? expectedEtag, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(key);
        string etag = Guid.NewGuid().ToString("N");
        await using var connection = await SqliteStore.OpenAsync(_connectionString, cancellationToken).ConfigureAwait(false);
        await using var command = Command(connection, key, expectedEtag is null
            ? "INSERT OR IGNORE INTO mf_grain_state (state_name, grain_id, data, etag) VALUES ($s, $g, $data, $new)"
            : "UPDATE mf_grain_state SET data = $data, etag = $new WHERE state_name = $s AND grain_id = $g AND etag = $expected");
        command.Parameters.Add("$data", SqliteType.Blob).Value = data.ToArray();
        command.Parameters.AddWithValue("$new", etag);
        if (expectedEtag is not null)
            command.Parameters.AddWithValue("$expected", expectedEtag);
        if (await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) != 1)
            throw await ConflictAsync(connection, key, expectedEtag, cancellationToken).ConfigureAwait(false);
        return etag;
    }

    /// <inheritdoc />
    public async Task ClearAsync(GrainStateKey key, string? expectedEtag, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(key);
        await using var connection = await SqliteStore.OpenAsync(_connectionString, cancellationToken).ConfigureAwait(false);
        if (expectedEtag is null)
        {
            // Nothing to delete; it is only a conflict if someone created a record meanwhile.
            var stored = await StoredEtagAsync(connection, key, cancellationToken).ConfigureAwait(false);
            if (stored is not null)
                throw new InconsistentStateException(key, null, stored);
            return;
        }
        await using var command = Command(connection, key, "DELETE FROM mf_grain_state WHERE state_name = $s AND grain_id = $g AND etag = $expected");
        command.Parameters.AddWithValue("$expected", expectedEtag);
        if (await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) != 1)
            throw await ConflictAsync(connection, key, expectedEtag, cancellationToken).ConfigureAwait(false);
    }

    private static async Task<InconsistentStateException> ConflictAsync(SqliteConnection connection, GrainStateKey key, string? expected, CancellationToken cancellationToken) =>
        new(key, expected, await StoredEtagAsync(connection, key, cancellationToken).ConfigureAwait(false));

    private static async Task<string?> StoredEtagAsync(SqliteConnection connection, GrainStateKey key, CancellationToken cancellationToken)
    {
        await using var command = Command(connection, key, "SELECT etag FROM mf_grain_state WHERE state_name = $s AND grain_id = $g");
        return (string?)await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
    }

    private static SqliteCommand Command(SqliteConnection connection, GrainStateKey key, string sql)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        command.Parameters.AddWithValue("$s", key.StateName);
        command.Parameters.AddWithValue("$g", key.GrainId);
        return command;
    }
}
