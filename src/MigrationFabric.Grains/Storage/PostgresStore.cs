using Npgsql;

namespace MigrationFabric.Grains.Storage;

/// <summary>Schema creation shared by the PostgreSQL stores: serialized across silos by an advisory lock.</summary>
internal static class PostgresStore
{
    // Concurrent CREATE TABLE IF NOT EXISTS can still fail on PostgreSQL's catalog; one lock id serializes our DDL.
    private const long SchemaLockId = 0x4D46_5343_4845_4D41; // "MFSCHEMA"

    public static async Task InitializeAsync(NpgsqlDataSource dataSource, string schemaSql, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using (var command = new NpgsqlCommand("SELECT pg_advisory_xact_lock(@id)", connection, transaction))
        {
            command.Parameters.AddWithValue("id", SchemaLockId);
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        await using (var command = new NpgsqlCommand(schemaSql, connection, transaction))
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
    }
}
