using MigrationFabric.Grains.Membership;

namespace MigrationFabric.Grains.GrainDirectory;

/// <summary>The slice of the grain directory this silo owns: grain id -> silo of its single activation.</summary>
/// <remarks>
/// On every ring change the partition keeps only entries it still owns that point at active silos,
/// then waits until every active silo has reported the activations it holds whose owner is this
/// silo (a recovery round, which also rebuilds what a dead owner held). Lookups and registrations
/// wait for that round, so a grain is never "not found" while its activation is being handed over:
/// that is what keeps a single activation per id across ring changes.
/// </remarks>
internal sealed class DirectoryPartition(SiloAddress self, TimeSpan recoveryTimeout, TimeProvider time)
{
    private readonly object _gate = new();
    private readonly Dictionary<GrainId, SiloAddress> _entries = new();
    private readonly HashSet<SiloAddress> _pendingReports = new();
    private ConsistentHashRing _ring = new(-1, [], 1);
    private TaskCompletionSource _ready = NewReady();
    private TaskCompletionSource _viewAdvanced = NewReady();

    /// <summary>Number of entries held.</summary>
    public int Count { get { lock (_gate) return _entries.Count; } }

    /// <summary>Moves to a new ring: drops entries no longer owned or pointing at silos gone, and starts a recovery round.</summary>
    public void BeginView(ConsistentHashRing ring)
    {
        TaskCompletionSource oldReady, oldAdvanced;
        lock (_gate)
        {
            if (ring.Version <= _ring.Version) return;
            _ring = ring;
            var drop = new List<GrainId>();
            foreach (var (id, silo) in _entries)
                if (!ring.Contains(silo) || !self.Equals(ring.Owner(id)))
                    drop.Add(id);
            foreach (var id in drop) _entries.Remove(id);
            _pendingReports.Clear();
            foreach (var s in ring.Silos) _pendingReports.Add(s);
            oldReady = _ready;
            oldAdvanced = _viewAdvanced;
            _ready = NewReady();
            _viewAdvanced = NewReady();
            if (_pendingReports.Count == 0) _ready.TrySetResult();
        }
        // Waiters of the previous round re-check against this one.
        oldReady.TrySetResult();
        oldAdvanced.TrySetResult();
        _ = ExpireRecoveryAsync(ring.Version);
    }

    /// <summary>Merges the activations <paramref name="from"/> holds for this partition at ring <paramref name="version"/>; returns ids another silo already holds.</summary>
    public async Task<List<GrainId>> ApplyReportAsync(long version, SiloAddress from, IReadOnlyList<GrainId> ids, CancellationToken cancellationToken)
    {
        await WaitForVersionAsync(version, cancellationToken).ConfigureAwait(false);
        var conflicts = new List<GrainId>();
        TaskCompletionSource? ready = null;
        lock (_gate)
        {
            if (version != _ring.Version) return conflicts; // superseded: the sender reports again for the newer ring
            foreach (var id in ids)
            {
                if (!self.Equals(_ring.Owner(id))) continue;
                if (_entries.TryGetValue(id, out var holder) && !holder.Equals(from) && _ring.Contains(holder))
                    conflicts.Add(id);
                else
                    _entries[id] = from;
            }
            if (_pendingReports.Remove(from) && _pendingReports.Count == 0) ready = _ready;
        }
        ready?.TrySetResult();
        return conflicts;
    }

    /// <summary>Where <paramref name="id"/> lives, or null; <see cref="DirectoryResult.NotOwner"/> when the ring says another silo owns it.</summary>
    public async Task<DirectoryResult> LookupAsync(GrainId id, CancellationToken cancellationToken)
    {
        await WaitReadyAsync(cancellationToken).ConfigureAwait(false);
        lock (_gate)
        {
            if (!self.Equals(_ring.Owner(id))) return DirectoryResult.NotOwner(_ring.Version);
            return DirectoryResult.Found(_entries.TryGetValue(id, out var s) ? s : null, _ring.Version);
        }
    }

    /// <summary>Records <paramref name="silo"/> as the home of <paramref name="id"/> unless an active silo already is; returns the winner.</summary>
    public async Task<DirectoryResult> RegisterAsync(GrainId id, SiloAddress silo, CancellationToken cancellationToken)
    {
        await WaitReadyAsync(cancellationToken).ConfigureAwait(false);
        lock (_gate)
        {
            if (!self.Equals(_ring.Owner(id))) return DirectoryResult.NotOwner(_ring.Version);
            if (_entries.TryGetValue(id, out var existing) && _ring.Contains(existing))
                return DirectoryResult.Found(existing, _ring.Version);
            _entries[id] = silo;
            return DirectoryResult.Found(silo, _ring.Version);
        }
    }

    /// <summary>Forgets <paramref name="id"/> if it still points at <paramref name="silo"/>.</summary>
    public void Unregister(GrainId id, SiloAddress silo)
    {
        lock (_gate)
        {
            if (_entries.TryGetValue(id, out var existing) && existing.Equals(silo))
                _entries.Remove(id);
        }
    }

    private async Task WaitReadyAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            Task ready;
            lock (_gate)
            {
                ready = _ready.Task;
                if (ready.IsCompleted) return;
            }
            await ready.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task WaitForVersionAsync(long version, CancellationToken cancellationToken)
    {
        while (true)
        {
            Task advanced;
            lock (_gate)
            {
                if (_ring.Version >= version) return;
                advanced = _viewAdvanced.Task;
            }
            await advanced.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task ExpireRecoveryAsync(long version)
    {
        // A silo that never reports (it died before the view said so) must not stall the directory forever.
        await Task.Delay(recoveryTimeout, time).ConfigureAwait(false);
        TaskCompletionSource? ready = null;
        lock (_gate)
        {
            if (_ring.Version == version && !_ready.Task.IsCompleted)
            {
                _pendingReports.Clear();
                ready = _ready;
            }
        }
        ready?.TrySetResult();
    }

    private static TaskCompletionSource NewReady() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}

/// <summary>The answer of a directory partition.</summary>
internal readonly record struct DirectoryResult(bool IsOwner, SiloAddress? Silo, long Version)
{
    public static DirectoryResult NotOwner(long version) => new(false, null, version);
    public static DirectoryResult Found(SiloAddress? silo, long version) => new(true, silo, version);
}
