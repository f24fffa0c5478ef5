namespace MigrationFabric.Grains.Storage;

/// <summary>Persistent grain state with etags and optimistic concurrency (in-memory, SQLite or PostgreSQL).</summary>
/// <remarks>
/// Etags are opaque and never reused for a key, so a writer holding an etag from before a clear
/// cannot overwrite a later record. <c>expectedEtag == null</c> means "there must be no record".
/// </remarks>
public interface IGrainStorage
{
    /// <summary>Creates the schema when missing. Idempotent and safe to race.</summary>
    Task InitializeAsync(CancellationToken cancellationToken);

    /// <summary>Reads the record of <paramref name="key"/> (<see cref="GrainStateRecord.Missing"/> when none).</summary>
    Task<GrainStateRecord> ReadAsync(GrainStateKey key, CancellationToken cancellationToken);

    /// <summary>Writes <paramref name="data"/> if the stored etag is still <paramref name="expectedEtag"/>; returns the new etag.</summary>
    /// <exception cref="InconsistentStateException">The stored etag differs (another writer won).</exception>
    Task<string> WriteAsync(GrainStateKey key, ReadOnlyMemory<byte> data, string? expectedEtag, CancellationToken cancellationToken);

    /// <summary>Deletes the record if the stored etag is still <paramref name="expectedEtag"/> (null and no record: no-op).</summary>
    /// <exception cref="InconsistentStateException">The stored etag differs (another writer won).</exception>
    Task ClearAsync(GrainStateKey key, string? expectedEtag, CancellationToken cancellationToken);
}
