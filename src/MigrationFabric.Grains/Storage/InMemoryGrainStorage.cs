using System.Globalization;

namespace MigrationFabric.Grains.Storage;

/// <summary>Grain state in this process's memory: for silos that share one process (tests, the embedded cluster).</summary>
public sealed class InMemoryGrainStorage : IGrainStorage
{
    private readonly object _gate = new();
    private readonly Dictionary<GrainStateKey, (byte[] Data, string Etag)> _records = new();
    private long _nextEtag;

    /// <inheritdoc />
    public Task InitializeAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc />
    public Task<GrainStateRecord> ReadAsync(GrainStateKey key, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(key);
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
            return Task.FromResult(_records.TryGetValue(key, out var r) ? new GrainStateRecord(r.Data, r.Etag) : GrainStateRecord.Missing);
    }

    /// <inheritdoc />
    public Task<string> WriteAsync(GrainStateKey key, ReadOnlyMemory<byte> data, string? expectedEtag, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(key);
        cancellationToken.ThrowIfCancellationRequested();
        byte[] copy = data.ToArray();
        lock (_gate)
        {
            string? stored = _records.TryGetValue(key, out var r) ? r.Etag : null;
            if (stored != expectedEtag)
                throw new InconsistentStateException(key, expectedEtag, stored);
            string etag = (++_nextEtag).ToString(CultureInfo.InvariantCulture);
            _records[key] = (copy, etag);
            return Task.FromResult(etag);
        }
    }

    /// <inheritdoc />
    public Task ClearAsync(GrainStateKey key, string? expectedEtag, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(key);
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            string? stored = _records.TryGetValue(key, out var r) ? r.Etag : null;
            if (stored != expectedEtag)
                throw new InconsistentStateException(key, expectedEtag, stored);
            _records.Remove(key);
        }
        return Task.CompletedTask;
    }
}
