using System.Collections.Concurrent;
using MigrationFabric.Grains.Membership;
using MigrationFabric.Grains.Runtime;

namespace MigrationFabric.Grains.GrainDirectory;

/// <summary>Finds and records where grains live: a local cache in front of the directory partitioned over the ring.</summary>
internal sealed class GrainLocator
{
    private readonly SiloRuntime _runtime;
    private readonly ConcurrentDictionary<GrainId, SiloAddress> _cache = new();
    private readonly object _viewGate = new();
    private ConsistentHashRing _ring;

    public GrainLocator(SiloRuntime runtime)
    {
        _runtime = runtime;
        _ring = new ConsistentHashRing(-1, [], runtime.Options.VirtualNodesPerSilo);
        Partition = new DirectoryPartition(runtime.Self, runtime.Options.DirectoryRecoveryTimeout, runtime.Time);
    }

    /// <summary>This silo's slice of the directory.</summary>
    public DirectoryPartition Partition { get; }

    /// <summary>The current ring of active silos.</summary>
    public ConsistentHashRing Ring => Volatile.Read(ref _ring);

    /// <summary>Number of cached locations.</summary>
    public int CacheCount => _cache.Count;

    /// <summary>Where <paramref name="id"/> is activated, or null when nowhere.</summary>
    public async ValueTask<SiloAddress?> LookupAsync(GrainId id, CancellationToken cancellationToken)
    {
        if (_cache.TryGetValue(id, out var cached))
        {
            if (Ring.Contains(cached)) return cached;
            _cache.TryRemove(new KeyValuePair<GrainId, SiloAddress>(id, cached));
        }
        var (result, _) = await OwnerCallAsync(id, (owner, ct) => owner.Equals(_runtime.Self)
            ? Partition.LookupAsync(id, ct)
            : _runtime.Messenger.LookupAsync(owner, id, ct), cancellationToken).ConfigureAwait(false);
        if (result.Silo is not null) _cache[id] = result.Silo;
        return result.Silo;
    }

    /// <summary>Registers this silo as the home of <paramref name="id"/>; returns the winner (this silo or the one that was first).</summary>
    /// <remarks><paramref name="onRegistered"/> runs under the view lock only if the ring did not move during the call, so a
    /// concurrent ring change either sees the activation in its report or makes this method register again with the new owner.</remarks>
    public async Task<SiloAddress> RegisterAsync(GrainId id, Action onRegistered, CancellationToken cancellationToken)
    {
        var self = _runtime.Self;
        while (true)
        {
            var (result, ring) = await OwnerCallAsync(id, (owner, ct) => owner.Equals(self)
                ? Partition.RegisterAsync(id, self, ct)
                : _runtime.Messenger.RegisterAsync(owner, id, self, ct), cancellationToken).ConfigureAwait(false);
            var winner = result.Silo ?? self;
            if (!winner.Equals(self))
            {
                _cache[id] = winner;
                return winner;
            }
            lock (_viewGate)
            {
                if (Ring.Version == ring.Version)
                {
                    onRegistered();
                    return self;
                }
            }
        }
    }

    /// <summary>Removes the directory entry of <paramref name="id"/> if it points at <paramref name="silo"/>.</summary>
    public async Task UnregisterAsync(GrainId id, SiloAddress silo, CancellationToken cancellationToken)
    {
        _cache.TryRemove(new KeyValuePair<GrainId, SiloAddress>(id, silo));
        var owner = Ring.Owner(id);
        if (owner is null) return;
        if (owner.Equals(_runtime.Self)) Partition.Unregister(id, silo);
        else await _runtime.Messenger.UnregisterAsync(owner, id, silo, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Remembers that <paramref name="id"/> lives on <paramref name="silo"/> (learnt from a forward).</summary>
    public void Cache(GrainId id, SiloAddress silo) => _cache[id] = silo;

    /// <summary>Applies a new membership view: new ring, cache purge, partition recovery, and reports to the new owners.</summary>
    public void OnViewChanged(MembershipSnapshot view)
    {
        ConsistentHashRing ring;
        List<GrainId> held;
        lock (_viewGate)
        {
            if (view.Version <= _ring.Version) return;
            ring = new ConsistentHashRing(view.Version, view.ActiveSilos, _runtime.Options.VirtualNodesPerSilo);
            Volatile.Write(ref _ring, ring);
            foreach (var (id, silo) in _cache)
                if (!ring.Contains(silo))
                    _cache.TryRemove(new KeyValuePair<GrainId, SiloAddress>(id, silo));
            Partition.BeginView(ring);
            held = _runtime.Catalog.RegisteredIds();
        }
        _ = ReportAsync(ring, held);
    }

    private async Task ReportAsync(ConsistentHashRing ring, List<GrainId> held)
    {
        var byOwner = new Dictionary<SiloAddress, List<GrainId>>();
        foreach (var s in ring.Silos) byOwner[s] = [];
        foreach (var id in held)
        {
            var owner = ring.Owner(id);
            if (owner is not null) byOwner[owner].Add(id);
        }
        var self = _runtime.Self;
        var tasks = new List<Task>();
        foreach (var (owner, ids) in byOwner)
            tasks.Add(ReportOneAsync(ring, owner, ids, self));
        await Task.WhenAll(tasks).ConfigureAwait(false);
    }

    private async Task ReportOneAsync(ConsistentHashRing ring, SiloAddress owner, List<GrainId> ids, SiloAddress self)
    {
        try
        {
            using var timeout = new CancellationTokenSource(_runtime.Options.DirectoryRecoveryTimeout);
            var conflicts = owner.Equals(self)
                ? await Partition.ApplyReportAsync(ring.Version, self, ids, timeout.Token).ConfigureAwait(false)
                : await _runtime.Messenger.ReportAsync(owner, ring.Version, self, ids, timeout.Token).ConfigureAwait(false);
            foreach (var id in conflicts)
                _runtime.Catalog.Find(id)?.RequestDeactivation(DeactivationReason.DuplicateActivation);
        }
        catch (Exception e)
        {
            _runtime.Log.ReportFailed(owner, ring.Version, e);
        }
    }

    private async Task<(DirectoryResult Result, ConsistentHashRing Ring)> OwnerCallAsync(
        GrainId id, Func<SiloAddress, CancellationToken, Task<DirectoryResult>> call, CancellationToken cancellationToken)
    {
        var started = _runtime.Time.GetTimestamp();
        for (int attempt = 0; ; attempt++)
        {
            var ring = Ring;
            var owner = ring.Owner(id)
                ?? throw new GrainRoutingException($"No active silo in the cluster to own the directory entry of {id} (ring version {ring.Version}).");
            var result = await call(owner, cancellationToken).ConfigureAwait(false);
            if (result.IsOwner) return (result, ring);
            // The owner's view differs from ours: one of us is behind; views converge within a poll period.
            if (_runtime.Time.GetElapsedTime(started) > _runtime.Options.DirectoryRetryTimeout)
                throw new GrainRoutingException($"Silo {owner} does not own the directory entry of {id} at its ring version {result.Version} (ours: {ring.Version}) and the views did not converge within SiloOptions.DirectoryRetryTimeout ({_runtime.Options.DirectoryRetryTimeout}).");
            await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(200, 10 * (attempt + 1))), _runtime.Time, cancellationToken).ConfigureAwait(false);
        }
    }
}
