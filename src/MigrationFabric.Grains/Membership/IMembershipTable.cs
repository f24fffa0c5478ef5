namespace MigrationFabric.Grains.Membership;

/// <summary>A versioned membership table with compare-and-swap writes (in-memory, SQLite or PostgreSQL).</summary>
/// <remarks>
/// Every insert and update is conditional on the table version (the caller passes
/// <c>read.Version.Next()</c>) and, for updates, on the row's etag: of concurrent writers that read
/// the same version exactly one wins, the others get <c>false</c> and must re-read. Heartbeats
/// (<see cref="UpdateIAmAliveAsync"/>) are the exception: unconditional, and they change neither the
/// row etag nor the table version. A row's IAmAlive time never moves backwards: every write keeps the
/// later of the stored and the written time (an update based on an older read must not undo a heartbeat).
/// </remarks>
public interface IMembershipTable
{
    /// <summary>Creates the schema and the version row when missing. Idempotent and safe to race.</summary>
    Task InitializeAsync(CancellationToken cancellationToken);

    /// <summary>Reads all rows of this cluster and the table version in one consistent snapshot.</summary>
    Task<MembershipTableData> ReadAllAsync(CancellationToken cancellationToken);

    /// <summary>Reads only the table version (cheap: lets silos poll for changes).</summary>
    Task<TableVersion> ReadVersionAsync(CancellationToken cancellationToken);

    /// <summary>Inserts a row if no row with that silo exists and the table is still at <c>version.Version - 1</c>.</summary>
    /// <returns>True when this writer won; false on any conflict.</returns>
    Task<bool> InsertRowAsync(MembershipEntry entry, TableVersion version, CancellationToken cancellationToken);

    /// <summary>Replaces a row if its etag is still <paramref name="etag"/> and the table is still at <c>version.Version - 1</c>.</summary>
    /// <returns>True when this writer won; false on any conflict.</returns>
    Task<bool> UpdateRowAsync(MembershipEntry entry, string etag, TableVersion version, CancellationToken cancellationToken);

    /// <summary>Writes the silo's heartbeat time; a missing row is an error (<see cref="MembershipTableException"/>).</summary>
    Task UpdateIAmAliveAsync(SiloAddress silo, DateTimeOffset iAmAliveTime, CancellationToken cancellationToken);

    /// <summary>Deletes Dead rows whose heartbeat is older than <paramref name="olderThan"/>; returns how many.</summary>
    Task<int> CleanupDefunctEntriesAsync(DateTimeOffset olderThan, CancellationToken cancellationToken);
}
