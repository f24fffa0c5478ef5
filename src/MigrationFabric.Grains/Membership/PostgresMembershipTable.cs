using MigrationFabric.Grains.Storage;
using Npgsql;

namespace MigrationFabric.Grains.Membership;

/// <summary>A membership table in PostgreSQL (Npgsql): for a real cluster. Tables are created when missing.</summary>
/// <remarks>
/// A write is one transaction: <c>UPDATE version ... WHERE version = @old</c> takes the version row's
/// lock, so a concurrent writer waits and then finds the version moved (0 rows); then the row is
/// inserted or updated <c>WHERE etag = @etag</c>. Either step matching nothing rolls the whole write back.
/// </remarks>
public sealed class PostgresMembershipTable : IMembershipTable, IAsyncDisposable
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly bool _ownsDataSource;
    private readonly string _clusterId;

    /// <summary>Creates the table from an Npgsql connection string.</summary>
    public PostgresMembershipTable(string connectionString, string clusterId)
        : this(NpgsqlDataSource.Create(Check(connectionString)), clusterId) => _ownsDataSource = true;

    /// <summary>Creates the table over a data source the caller owns.</summary>
    public PostgresMembershipTable(NpgsqlDataSource dataSource, string clusterId)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentException.ThrowIfNullOrEmpty(clusterId);
        _dataSource = dataSource;
        _clusterId = clusterId;
    }

    /// <inheritdoc />
    public async Task InitializeAsync(CancellationToken cancellationToken)
    {
        await PostgresStore.InitializeAsync(_dataSource, """
            CREATE TABLE IF NOT EXISTS mf_membership_version (
                cluster_id text NOT NULL PRIMARY KEY,
                version bigint NOT NULL);
            CREATE TABLE IF NOT EXISTS mf_membership (
                cluster_id text NOT NULL,
                silo text NOT NULL,
                status integer NOT NULL,
                start_ticks bigint NOT NULL,
                iamalive_ticks bigint NOT NULL,
                suspicions text NOT NULL,
                silo_name text NOT NULL,
                etag text NOT NULL,
                PRIMARY KEY (cluster_id, silo));
            """, cancellationToken).ConfigureAwait(false);
        await using var command = _dataSource.CreateCommand(
            "INSERT INTO mf_membership_version (cluster_id, version) VALUES (@c, 0) ON CONFLICT DO NOTHING");
        command.Parameters.AddWithValue("c", _clusterId);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task<MembershipTableData> ReadAllAsync(CancellationToken cancellationToken)
    {
        // One statement: the version and the rows come from one snapshot.
        await using var command = _dataSource.CreateCommand("""
            SELECT v.version, m.silo, m.status::bigint, m.start_ticks, m.iamalive_ticks, m.suspicions, m.silo_name, m.etag
            FROM mf_membership_version v LEFT JOIN mf_membership m ON m.cluster_id = v.cluster_id
            WHERE v.cluster_id = @c
            """);
        command.Parameters.AddWithValue("c", _clusterId);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await MembershipRowReader.ReadAsync(reader, _clusterId, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task<TableVersion> ReadVersionAsync(CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand("SELECT version FROM mf_membership_version WHERE cluster_id = @c");
        command.Parameters.AddWithValue("c", _clusterId);
        var value = await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
        return value is long v ? MembershipRowReader.Version(v) : throw MembershipRowReader.NotInitialized(_clusterId);
    }

    /// <inheritdoc />
    public Task<bool> InsertRowAsync(MembershipEntry entry, TableVersion version, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(entry);
        return WriteAsync(entry, version, """
            INSERT INTO mf_membership (cluster_id, silo, status, start_ticks, iamalive_ticks, suspicions, silo_name, etag)
            VALUES (@c, @silo, @status, @start, @alive, @suspicions, @name, @newEtag) ON CONFLICT DO NOTHING
            """, null, cancellationToken);
    }

    /// <inheritdoc />
    public Task<bool> UpdateRowAsync(MembershipEntry entry, string etag, TableVersion version, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(entry);
        ArgumentNullException.ThrowIfNull(etag);
        return WriteAsync(entry, version, """
            UPDATE mf_membership SET status = @status, start_ticks = @start, iamalive_ticks = GREATEST(iamalive_ticks, @alive),
                suspicions = @suspicions, silo_name = @name, etag = @newEtag
            WHERE cluster_id = @c AND silo = @silo AND etag = @etag
            """, etag, cancellationToken);
    }

    /// <inheritdoc />
    public async Task UpdateIAmAliveAsync(SiloAddress silo, DateTimeOffset iAmAliveTime, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(silo);
        await using var command = _dataSource.CreateCommand(
            "UPDATE mf_membership SET iamalive_ticks = GREATEST(iamalive_ticks, @alive) WHERE cluster_id = @c AND silo = @silo");
        command.Parameters.AddWithValue("alive", iAmAliveTime.UtcTicks);
        command.Parameters.AddWithValue("c", _clusterId);
        command.Parameters.AddWithValue("silo", silo.ToString());
        if (await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 0)
            throw new MembershipTableException($"Cannot write the heartbeat of silo {silo}: it has no row in cluster '{_clusterId}'.");
    }

    /// <inheritdoc />
    public async Task<int> CleanupDefunctEntriesAsync(DateTimeOffset olderThan, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand(
            "DELETE FROM mf_membership WHERE cluster_id = @c AND status = @dead AND iamalive_ticks < @before");
        command.Parameters.AddWithValue("c", _clusterId);
        command.Parameters.AddWithValue("dead", (int)SiloStatus.Dead);
        command.Parameters.AddWithValue("before", olderThan.UtcTicks);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Disposes the data source when this table created it.</summary>
    public ValueTask DisposeAsync() => _ownsDataSource ? _dataSource.DisposeAsync() : ValueTask.CompletedTask;

    private async Task<bool> WriteAsync(MembershipEntry entry, TableVersion version, string rowSql, string? etag, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(version);
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using (var bump = new NpgsqlCommand(
            "UPDATE mf_membership_version SET version = @new WHERE cluster_id = @c AND version = @old", connection, transaction))
        {
            bump.Parameters.AddWithValue("new", version.Version);
            bump.Parameters.AddWithValue("old", version.Version - 1);
            bump.Parameters.AddWithValue("c", _clusterId);
            if (await bump.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) != 1)
                return false; // disposing the transaction rolls it back
        }
        await using (var row = new NpgsqlCommand(rowSql, connection, transaction))
        {
            row.Parameters.AddWithValue("c", _clusterId);
            row.Parameters.AddWithValue("silo", entry.Silo.ToString());
            row.Parameters.AddWithValue("status", (int)entry.Status);
            row.Parameters.AddWithValue("start", entry.StartTime.UtcTicks);
            row.Parameters.AddWithValue("alive", entry.IAmAliveTime.UtcTicks);
            row.Parameters.AddWithValue("suspicions", SuspicionCodec.Encode(entry.Suspicions));
            row.Parameters.AddWithValue("name", entry.SiloName);
            row.Parameters.AddWithValue("newEtag", SuspicionCodec.NewEtag());
            if (etag is not null)
                row.Parameters.AddWithValue("etag", etag);
            if (await row.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) != 1)
                return false;
        }
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return true;
    }

    private static string Check(string connectionString)
    {
        ArgumentException.ThrowIfNullOrEmpty(connectionString);
        return connectionString;
    }
}
