namespace MigrationFabric.Grains.Membership;

/// <summary>An immutable view of the cluster as one silo last read it: every row and the active set.</summary>
public sealed class MembershipSnapshot
{
    /// <summary>The view before the first table read.</summary>
    public static MembershipSnapshot Empty { get; } = new(-1, []);

    /// <summary>Builds a view from table rows.</summary>
    public MembershipSnapshot(long version, IEnumerable<MembershipEntry> entries)
    {
        Version = version;
        var all = new Dictionary<SiloAddress, MembershipEntry>();
        foreach (var e in entries)
            all[e.Silo] = e;
        Entries = all;
        var active = new List<SiloAddress>();
        foreach (var e in all.Values)
            if (e.Status == SiloStatus.Active)
                active.Add(e.Silo);
        active.Sort();
        ActiveSilos = active;
    }

    /// <summary>The table version this view was read at; -1 before the first read.</summary>
    public long Version { get; }

    /// <summary>Every row, dead ones included, by silo.</summary>
    public IReadOnlyDictionary<SiloAddress, MembershipEntry> Entries { get; }

    /// <summary>Silos with status Active, sorted (<see cref="SiloAddress.CompareTo"/>): the ring the directory hashes over.</summary>
    public IReadOnlyList<SiloAddress> ActiveSilos { get; }

    /// <summary>The status of <paramref name="silo"/>, or <see cref="SiloStatus.None"/> when it has no row.</summary>
    public SiloStatus GetStatus(SiloAddress silo) =>
        Entries.TryGetValue(silo, out var e) ? e.Status : SiloStatus.None;

    /// <summary>True when <paramref name="silo"/> is Active.</summary>
    public bool IsActive(SiloAddress silo) => GetStatus(silo) == SiloStatus.Active;
}
