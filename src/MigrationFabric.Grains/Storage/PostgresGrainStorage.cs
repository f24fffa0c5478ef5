using Npgsql;
using NpgsqlTypes;

namespace MigrationFabric.Grains.Storage;

/// <summary>Grain state in PostgreSQL (Npgsql): for a real cluster. The table is created when missing.</summary>
public sealed class PostgresGrainStorage : IGrainStorage, IAsyncDisposable
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly bool _ownsDataSource;

    /// <summary>Creates the store from an Npgsql connection string.</summary>
    public PostgresGrainStorage(string connectionString)
    {
        ArgumentException.ThrowIfNullOrEmpty(connectionString);
        _dataSource = NpgsqlDataSource.Create(connectionString);
        _ownsDataSource = true;
    }

    /// <summary>Creates the store over a data source the caller owns.</summary>
    public PostgresGrainStorage(NpgsqlDataSource dataSource)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        _dataSource = dataSource;
    }

    /// <inheritdoc />
    public Task InitializeAsync(CancellationToken cancellationToken) =>
        PostgresStore.InitializeAsync(_dataSource, """
            CREATE TABLE IF NOT EXISTS mf_grain_state (
                state_name text NOT NULL,
                grain_id text NOT NULL,
                data bytea NOT NULL,
                etag text NOT NULL,
                PRIMARY KEY (state_name, grain_id));
            """, cancellationToken);

    /// <inheritdoc />
    public async Task<GrainStateRecord> ReadAsync(GrainStateKey key, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(key);
        await using var command = Command(key, "SELECT data, etag FROM mf_grain_state WHERE state_name = @s AND grain_id = @g");
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            return GrainStateRecord.Missing;
        return new GrainStateRecord(reader.GetFieldValue<byte[]>(0), reader.GetString(1));
    }

    /// <inheritdoc />
    public async Task<string> WriteAsync(GrainStateKey key, ReadOnlyMemory<byte> data, string? expectedEtag, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(key);
        string etag = Guid.NewGuid().ToString("N");
        await using var command = Command(key, expectedEtag is null
            ? "INSERT INTO mf_grain_state (state_name, grain_id, data, etag) VALUES (@s, @g, @data, @new) ON CONFLICT DO NOTHING"
            : "UPDATE mf_grain_state SET data = @data, etag = @new WHERE state_name = @s AND grain_id = @g AND etag = @expected");
        command.Parameters.Add(new NpgsqlParameter("data", NpgsqlDbType.Bytea) { Value = data.ToArray() });
        command.Parameters.AddWithValue("new", etag);
        if (expectedEtag is not null)
            command.Parameters.AddWithValue("expected", expectedEtag);
        if (await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) != 1)
            throw new InconsistentStateException(key, expectedEtag, await StoredEtagAsync(key, cancellationToken).ConfigureAwait(false));
        return etag;
    }

    /// <inheritdoc />
    public async Task ClearAsync(GrainStateKey key, string? expectedEtag, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (expectedEtag is null)
        {
            var stored = await StoredEtagAsync(key, cancellationToken).ConfigureAwait(false);
            if (stored is not null)
                throw new InconsistentStateException(key, null, stored);
            return;
        }
        await using var command = Command(key, "DELETE FROM mf_grain_state WHERE state_name = @s AND grain_id = @g AND etag = @expected");
        command.Parameters.AddWithValue("expected", expectedEtag);
        if (await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) != 1)
            throw new InconsistentStateException(key, expectedEtag, await StoredEtagAsync(key, cancellationToken).ConfigureAwait(false));
    }

    /// <summary>Disposes the data source when this store created it.</summary>
    public ValueTask DisposeAsync() => _ownsDataSource ? _dataSource.DisposeAsync() : ValueTask.CompletedTask;

    private async Task<string?> StoredEtagAsync(GrainStateKey key, CancellationToken cancellationToken)
    {
        await using var command = Command(key, "SELECT etag FROM mf_grain_state WHERE state_name = @s AND grain_id = @g");
        return (string?)await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
    }

    private NpgsqlCommand Command(GrainStateKey key, string sql)
    {
        var command = _dataSource.CreateCommand(sql);
        command.Parameters.AddWithValue("s", key.StateName);
        command.Parameters.AddWithValue("g", key.GrainId);
        return command;
    }
}
