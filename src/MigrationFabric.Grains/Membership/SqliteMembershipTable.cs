using Microsoft.Data.Sqlite;
using MigrationFabric.Grains.Storage;

namespace MigrationFabric.Grains.Membership;

/// <summary>A membership table in a SQLite file: for several silo processes on one machine.</summary>
/// <remarks>
/// WAL journal so readers never block the writer; every write runs in a <c>BEGIN IMMEDIATE</c>
/// transaction (the write lock is taken up front, so two processes never deadlock upgrading a read
/// lock) and busy waits are retried up to <c>busyTimeout</c>. Rows of several clusters can share a file.
/// </remarks>
public sealed class SqliteMembershipTable : IMembershipTable
{
    private readonly string _connectionString;
    private readonly string _clusterId;

    /// <summary>Creates the table over the file at <paramref name="path"/> (created when missing).</summary>
    public SqliteMembershipTable(string path, string clusterId, TimeSpan? busyTimeout = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentException.ThrowIfNullOrEmpty(clusterId);
        _connectionString = SqliteStore.ConnectionString(path, busyTimeout);
        _clusterId = clusterId;
    }

    /// <inheritdoc />
    public async Task InitializeAsync(CancellationToken cancellationToken)
    {
        await SqliteStore.InitializeAsync(_connectionString, """
            CREATE TABLE IF NOT EXISTS mf_membership_version (
                cluster_id TEXT NOT NULL PRIMARY KEY,
                version INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS mf_membership (
                cluster_id TEXT NOT NULL,
                silo TEXT NOT NULL,
                status INTEGER NOT NULL,
                start_ticks INTEGER NOT NULL,
                iamalive_ticks INTEGER NOT NULL,
                suspicions TEXT NOT NULL,
                silo_name TEXT NOT NULL,
                etag TEXT NOT NULL,
                PRIMARY KEY (cluster_id, silo));
            """, cancellationToken).ConfigureAwait(false);
        await using var connection = await SqliteStore.OpenAsync(_connectionString, cancellationToken).ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.CommandText = "INSERT OR IGNORE INTO mf_membership_version (cluster_id, version) VALUES ($c, 0)";
        command.Parameters.AddWithValue("$c", _clusterId);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task<MembershipTableData> ReadAllAsync(CancellationToken cancellationToken)
    {
        await using var connection = await SqliteStore.OpenAsync(_connectionString, cancellationToken).ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        // One statement reads the version and the rows from one snapshot.
        command.CommandText = """
            SELECT v.version, m.silo, m.status, m.start_ticks, m.iamalive_ticks, m.suspicions, m.silo_name, m.etag
            FROM mf_membership_version v LEFT JOIN mf_membership m ON m.cluster_id = v.cluster_id
            WHERE v.cluster_id = $c
            """;
        command.Parameters.AddWithValue("$c", _clusterId);
        try
        {
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            return await MembershipRowReader.ReadAsync(reader, _clusterId, cancellationToken).ConfigureAwait(false);
        }
        catch (SqliteException e) when (IsMissingTable(e))
        {
            throw MembershipRowReader.NotInitialized(_clusterId, e);
        }
    }

    /// <inheritdoc />
    public async Task<TableVersion> ReadVersionAsync(CancellationToken cancellationToken)
    {
        await using var connection = await SqliteStore.OpenAsync(_connectionString, cancellationToken).ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT version FROM mf_membership_version WHERE cluster_id = $c";
        command.Parameters.AddWithValue("$c", _clusterId);
        object? value;
        try
        {
            value = await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (SqliteException e) when (IsMissingTable(e))
        {
            throw MembershipRowReader.NotInitialized(_clusterId, e);
        }
        return value is long v ? MembershipRowReader.Version(v) : throw MembershipRowReader.NotInitialized(_clusterId);
    }

    /// <inheritdoc />
    public Task<bool> InsertRowAsync(MembershipEntry entry, TableVersion version, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(entry);
        return WriteAsync(entry, version, """
            INSERT OR IGNORE INTO mf_membership (cluster_id, silo, status, start_ticks, iamalive_ticks, suspicions, silo_name, etag)
            VALUES ($c, $silo, $status, $start, $alive, $suspicions, $name, $newEtag)
            """, null, cancellationToken);
    }

    /// <inheritdoc />
    public Task<bool> UpdateRowAsync(MembershipEntry entry, string etag, TableVersion version, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(entry);
        ArgumentNullException.ThrowIfNull(etag);
        return WriteAsync(entry, version, """
            UPDATE mf_membership SET status = $status, start_ticks = $start, iamalive_ticks = max(iamalive_ticks, $alive),
                suspicions = $suspicions, silo_name = $name, etag = $newEtag
            WHERE cluster_id = $c AND silo = $silo AND etag = $etag
            """, etag, cancellationToken);
    }

    /// <inheritdoc />
    public async Task UpdateIAmAliveAsync(SiloAddress silo, DateTimeOffset iAmAliveTime, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(silo);
        await using var connection = await SqliteStore.OpenAsync(_connectionString, cancellationToken).ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.CommandText = "UPDATE mf_membership SET iamalive_ticks = max(iamalive_ticks, $alive) WHERE cluster_id = $c AND silo = $silo";
        command.Parameters.AddWithValue("$alive", iAmAliveTime.UtcTicks);
        command.Parameters.AddWithValue("$c", _clusterId);
        command.Parameters.AddWithValue("$silo", silo.ToString());
        if (await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 0)
            throw new MembershipTableException($"Cannot write the heartbeat of silo {silo}: it has no row in cluster '{_clusterId}'.");
    }

    /// <inheritdoc />
    public async Task<int> CleanupDefunctEntriesAsync(DateTimeOffset olderThan, CancellationToken cancellationToken)
    {
        await using var connection = await SqliteStore.OpenAsync(_connectionString, cancellationToken).ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.CommandText = "DELETE FROM mf_membership WHERE cluster_id = $c AND status = $dead AND iamalive_ticks < $before";
        command.Parameters.AddWithValue("$c", _clusterId);
        command.Parameters.AddWithValue("$dead", (int)SiloStatus.Dead);
        command.Parameters.AddWithValue("$before", olderThan.UtcTicks);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task<bool> WriteAsync(MembershipEntry entry, TableVersion version, string rowSql, string? etag, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(version);
        await using var connection = await SqliteStore.OpenAsync(_connectionString, cancellationToken).ConfigureAwait(false);
        // BEGIN IMMEDIATE: take the write lock up front so two processes never deadlock upgrading read locks.
        await using var transaction = connection.BeginTransaction(deferred: false);
        await using (var bump = connection.CreateCommand())
        {
            bump.Transaction = transaction;
            bump.CommandText = "UPDATE mf_membership_version SET version = $new WHERE cluster_id = $c AND version = $old";
            bump.Parameters.AddWithValue("$new", version.Version);
            bump.Parameters.AddWithValue("$old", version.Version - 1);
            bump.Parameters.AddWithValue("$c", _clusterId);
            if (await bump.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) != 1)
                return false; // disposing the transaction rolls it back
        }
        await using (var row = connection.CreateCommand())
        {
            row.Transaction = transaction;
            row.CommandText = rowSql;
            row.Parameters.AddWithValue("$c", _clusterId);
            row.Parameters.AddWithValue("$silo", entry.Silo.ToString());
            row.Parameters.AddWithValue("$status", (int)entry.Status);
            row.Parameters.AddWithValue("$start", entry.StartTime.UtcTicks);
            row.Parameters.AddWithValue("$alive", entry.IAmAliveTime.UtcTicks);
            row.Parameters.AddWithValue("$suspicions", SuspicionCodec.Encode(entry.Suspicions));
            row.Parameters.AddWithValue("$name", entry.SiloName);
            row.Parameters.AddWithValue("$newEtag", SuspicionCodec.NewEtag());
            if (etag is not null)
                row.Parameters.AddWithValue("$etag", etag);
            if (await row.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) != 1)
                return false;
        }
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return true;
    }

    private static bool IsMissingTable(SqliteException e) =>
        e.SqliteErrorCode == 1 && e.Message.Contains("no such table", StringComparison.OrdinalIgnoreCase);
}
