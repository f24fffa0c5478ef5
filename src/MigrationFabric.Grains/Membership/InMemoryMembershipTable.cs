namespace MigrationFabric.Grains.Membership;

/// <summary>A membership table in this process's memory: for silos that share one process (tests, the embedded cluster).</summary>
public sealed class InMemoryMembershipTable : IMembershipTable
{
    private readonly object _gate = new();
    private readonly Dictionary<SiloAddress, MembershipRow> _rows = new();
    private long _version;
    private long _nextEtag;

    /// <inheritdoc />
    public Task InitializeAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc />
    public Task<MembershipTableData> ReadAllAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
            return Task.FromResult(new MembershipTableData([.. _rows.Values], CurrentVersion()));
    }

    /// <inheritdoc />
    public Task<TableVersion> ReadVersionAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
            return Task.FromResult(CurrentVersion());
    }

    /// <inheritdoc />
    public Task<bool> InsertRowAsync(MembershipEntry entry, TableVersion version, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(entry);
        ArgumentNullException.ThrowIfNull(version);
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            if (version.Version != _version + 1 || _rows.ContainsKey(entry.Silo))
                return Task.FromResult(false);
            _rows[entry.Silo] = new MembershipRow(entry, NewEtag());
            _version++;
            return Task.FromResult(true);
        }
    }

    /// <inheritdoc />
    public Task<bool> UpdateRowAsync(MembershipEntry entry, string etag, TableVersion version, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(entry);
        ArgumentNullException.ThrowIfNull(etag);
        ArgumentNullException.ThrowIfNull(version);
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            if (version.Version != _version + 1
                || !_rows.TryGetValue(entry.Silo, out var row) || row.Etag != etag)
                return Task.FromResult(false);
            _rows[entry.Silo] = new MembershipRow(WithLaterHeartbeat(entry, row.Entry.IAmAliveTime), NewEtag());
            _version++;
            return Task.FromResult(true);
        }
    }

    /// <inheritdoc />
    public Task UpdateIAmAliveAsync(SiloAddress silo, DateTimeOffset iAmAliveTime, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(silo);
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            if (!_rows.TryGetValue(silo, out var row))
                throw new MembershipTableException($"Cannot write the heartbeat of silo {silo}: it has no row in the membership table.");
            _rows[silo] = row with { Entry = WithLaterHeartbeat(row.Entry, iAmAliveTime) };
        }
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task<int> CleanupDefunctEntriesAsync(DateTimeOffset olderThan, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        int removed = 0;
        lock (_gate)
        {
            foreach (var row in _rows.Values.ToList())
                if (row.Entry.Status == SiloStatus.Dead && row.Entry.IAmAliveTime < olderThan)
                    removed += _rows.Remove(row.Entry.Silo) ? 1 : 0;
        }
        return Task.FromResult(removed);
    }

    private static MembershipEntry WithLaterHeartbeat(MembershipEntry entry, DateTimeOffset other) =>
        other > entry.IAmAliveTime ? entry with { IAmAliveTime = other } : entry;

    private TableVersion CurrentVersion() => new(_version, _version.ToString(System.Globalization.CultureInfo.InvariantCulture));

    private string NewEtag() => (++_nextEtag).ToString(System.Globalization.CultureInfo.InvariantCulture);
}
