namespace MigrationFabric.Grains.Membership;

/// <summary>What the rest of the runtime needs from membership: this silo's identity and the live view of the cluster.</summary>
public interface IClusterMembership
{
    /// <summary>This silo's identity.</summary>
    SiloAddress Self { get; }

    /// <summary>The latest view of the table (never null; <see cref="MembershipSnapshot.Empty"/> before start).</summary>
    MembershipSnapshot Current { get; }

    /// <summary>Raised (in version order, never concurrently) after <see cref="Current"/> moved to a newer version.</summary>
    event Action<MembershipSnapshot>? Changed;

    /// <summary>Raised once when this silo finds itself declared dead; the silo must stop.</summary>
    event Action<SiloAddress>? SelfDeclaredDead;

    /// <summary>Completes with the first view that satisfies <paramref name="predicate"/> (the current one if it already does).</summary>
    Task<MembershipSnapshot> WaitForAsync(Func<MembershipSnapshot, bool> predicate, CancellationToken cancellationToken);

    /// <summary>Re-reads the table now (e.g. after a peer said it changed) and publishes the result.</summary>
    Task RefreshAsync(CancellationToken cancellationToken);
}
