using MigrationFabric.Grains.Membership;

namespace MigrationFabric.Grains.GrainDirectory;

/// <summary>The ring of active silos, each at <c>virtualNodes</c> points; a grain belongs to the first point at or after its hash.</summary>
public sealed class ConsistentHashRing
{
    private readonly uint[] _points;
    private readonly SiloAddress[] _owners;

    /// <summary>Builds the ring of <paramref name="silos"/> for membership version <paramref name="version"/>.</summary>
    public ConsistentHashRing(long version, IReadOnlyList<SiloAddress> silos, int virtualNodes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(virtualNodes, 1);
        Version = version;
        Silos = silos;
        var points = new List<(uint Hash, SiloAddress Silo)>(silos.Count * virtualNodes);
        foreach (var silo in silos)
        {
            string name = silo.ToString();
            for (int i = 0; i < virtualNodes; i++)
                points.Add((StableHash.Of(name, i.ToString(System.Globalization.CultureInfo.InvariantCulture)), silo));
        }
        // Ties (astronomically rare) resolve by silo order so every silo builds the same ring.
        points.Sort((x, y) => x.Hash != y.Hash ? x.Hash.CompareTo(y.Hash) : x.Silo.CompareTo(y.Silo));
        _points = new uint[points.Count];
        _owners = new SiloAddress[points.Count];
        for (int i = 0; i < points.Count; i++)
        {
            _points[i] = points[i].Hash;
            _owners[i] = points[i].Silo;
        }
    }

    /// <summary>The membership version the ring was built from.</summary>
    public long Version { get; }

    /// <summary>The active silos, sorted.</summary>
    public IReadOnlyList<SiloAddress> Silos { get; }

    /// <summary>True when the ring has no silo.</summary>
    public bool IsEmpty => _points.Length == 0;

    /// <summary>The silo owning <paramref name="hash"/>, or null on an empty ring.</summary>
    public SiloAddress? Owner(uint hash)
    {
        if (_points.Length == 0) return null;
        int i = Array.BinarySearch(_points, hash);
        if (i < 0) i = ~i;
        if (i == _points.Length) i = 0;
        return _owners[i];
    }

    /// <summary>The directory owner of <paramref name="grain"/>.</summary>
    public SiloAddress? Owner(GrainId grain) => Owner(grain.StableHash);

    /// <summary>True when <paramref name="silo"/> is on the ring.</summary>
    public bool Contains(SiloAddress silo)
    {
        foreach (var s in Silos)
            if (s.Equals(silo)) return true;
        return false;
    }
}
