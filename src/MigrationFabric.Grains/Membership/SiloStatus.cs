namespace MigrationFabric.Grains.Membership;

/// <summary>Lifecycle of a silo identity; it only moves forward: Joining -> Active -> ShuttingDown -> Dead.</summary>
public enum SiloStatus
{
    /// <summary>Not a valid stored status; the default value of the enum.</summary>
    None = 0,

    /// <summary>Row inserted, silo starting; not yet serving grains.</summary>
    Joining = 1,

    /// <summary>Serving; part of the ring of active silos.</summary>
    Active = 2,

    /// <summary>Leaving gracefully; still answers but takes no new activations.</summary>
    ShuttingDown = 3,

    /// <summary>Gone for good; this identity never returns.</summary>
    Dead = 4,
}

/// <summary>Rules on <see cref="SiloStatus"/> values.</summary>
public static class SiloStatusExtensions
{
    /// <summary>True when a row may move from <paramref name="from"/> to <paramref name="to"/> (forward only).</summary>
    public static bool CanMoveTo(this SiloStatus from, SiloStatus to) =>
        from != SiloStatus.Dead && to > from && to != SiloStatus.None;

    /// <summary>True for statuses whose silo is expected to be alive (Joining, Active, ShuttingDown).</summary>
    public static bool IsAlive(this SiloStatus status) =>
        status is SiloStatus.Joining or SiloStatus.Active or SiloStatus.ShuttingDown;
}
