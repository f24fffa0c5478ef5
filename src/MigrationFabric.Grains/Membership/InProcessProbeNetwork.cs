using System.Collections.Concurrent;

namespace MigrationFabric.Grains.Membership;

/// <summary>Probing between silos in one process: silos register as reachable and tests can silence one.</summary>
/// <remarks>
/// A silenced or unregistered silo does not answer: its probe hangs until the prober's timeout,
/// exactly like a silo whose process froze, so the timeout path is what gets exercised.
/// </remarks>
public sealed class InProcessProbeNetwork : IProbe
{
    private readonly ConcurrentDictionary<SiloAddress, bool> _answering = new();

    /// <summary>Makes <paramref name="silo"/> answer probes.</summary>
    public void Register(SiloAddress silo) => _answering[silo] = true;

    /// <summary>Makes <paramref name="silo"/> stop answering (as if its process froze or its network went away).</summary>
    public void Silence(SiloAddress silo) => _answering[silo] = false;

    /// <summary>Forgets <paramref name="silo"/>; later probes of it hang until timeout.</summary>
    public void Unregister(SiloAddress silo) => _answering.TryRemove(silo, out _);

    /// <inheritdoc />
    public async Task ProbeAsync(SiloAddress target, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(target);
        if (_answering.TryGetValue(target, out bool answering) && answering)
            return;
        await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
    }
}
