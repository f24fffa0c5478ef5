namespace MigrationFabric.Grains.Membership;

/// <summary>Probes this silo's ring successors once per round and counts consecutive misses per silo.</summary>
public sealed class ClusterHealthMonitor(SiloAddress self, IProbe probe, MembershipOptions options, TimeProvider time)
{
    private readonly Dictionary<SiloAddress, int> _missed = new();

    /// <summary>The next <paramref name="count"/> silos after <paramref name="self"/> on the ring of Active and ShuttingDown silos, in address order.</summary>
    public static List<SiloAddress> Successors(SiloAddress self, MembershipSnapshot view, int count)
    {
        var ring = new List<SiloAddress> { self };
        foreach (var e in view.Entries.Values)
            if (e.Status is SiloStatus.Active or SiloStatus.ShuttingDown && !e.Silo.Equals(self))
                ring.Add(e.Silo);
        ring.Sort();
        int me = ring.IndexOf(self);
        var targets = new List<SiloAddress>();
        for (int i = 1; i < ring.Count && targets.Count < count; i++)
            targets.Add(ring[(me + i) % ring.Count]);
        return targets;
    }

    /// <summary>Probes every successor in parallel; returns those that missed this round with their consecutive-miss count.</summary>
    /// <remarks>Not thread-safe: one round at a time (the probe loop).</remarks>
    public async Task<List<(SiloAddress Silo, int Missed)>> ProbeRoundAsync(MembershipSnapshot view, CancellationToken stop)
    {
        var targets = Successors(self, view, options.NumProbedSilos);
        foreach (var gone in _missed.Keys.Where(s => !targets.Contains(s)).ToList())
            _missed.Remove(gone);
        var answered = await Task.WhenAll(targets.Select(t => ProbeOnceAsync(t, stop))).ConfigureAwait(false);
        var misses = new List<(SiloAddress, int)>();
        for (int i = 0; i < targets.Count; i++)
        {
            if (answered[i])
            {
                _missed.Remove(targets[i]);
                continue;
            }
            int missed = _missed.GetValueOrDefault(targets[i]) + 1;
            _missed[targets[i]] = missed;
            misses.Add((targets[i], missed));
        }
        return misses;
    }

    private async Task<bool> ProbeOnceAsync(SiloAddress target, CancellationToken stop)
    {
        using var timeout = new CancellationTokenSource(options.ProbeTimeout, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, stop);
        try
        {
            // WaitAsync too, so a probe that ignores its token still counts as missed on time.
            await probe.ProbeAsync(target, linked.Token).WaitAsync(options.ProbeTimeout, time, stop).ConfigureAwait(false);
            return true;
        }
        catch (Exception) when (!stop.IsCancellationRequested)
        {
            return false;
        }
    }
}
