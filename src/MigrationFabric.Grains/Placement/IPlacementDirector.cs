using MigrationFabric.Grains.GrainDirectory;
using MigrationFabric.Grains.Membership;

namespace MigrationFabric.Grains.Placement;

/// <summary>What a placement director knows when it chooses the silo of a new activation.</summary>
public sealed class PlacementContext(GrainId grainId, Type grainClass, SiloAddress? localSilo, MembershipSnapshot view, ConsistentHashRing ring, IGrainFactory grainFactory)
{
    /// <summary>The grain to place.</summary>
    public GrainId GrainId { get; } = grainId;

    /// <summary>Its implementation class.</summary>
    public Type GrainClass { get; } = grainClass;

    /// <summary>The silo deciding, or null when it is not active (a joining silo).</summary>
    public SiloAddress? LocalSilo { get; } = localSilo;

    /// <summary>The membership view (silo names are in <see cref="MembershipSnapshot.Entries"/>).</summary>
    public MembershipSnapshot View { get; } = view;

    /// <summary>The ring of active silos.</summary>
    public ConsistentHashRing Ring { get; } = ring;

    /// <summary>Active silos, sorted.</summary>
    public IReadOnlyList<SiloAddress> ActiveSilos => Ring.Silos;

    /// <summary>For directors that ask other grains (e.g. which host runs a VM).</summary>
    public IGrainFactory GrainFactory { get; } = grainFactory;
}

/// <summary>Chooses the silo of a new activation; one per grain class, named by a placement attribute.</summary>
public interface IPlacementDirector
{
    /// <summary>Returns an active silo of <paramref name="context"/>.</summary>
    ValueTask<SiloAddress> PlaceAsync(PlacementContext context);
}

/// <summary>Default: the silo owning the grain's hash on the ring (so its directory entry is local too).</summary>
public sealed class HashBasedPlacementDirector : IPlacementDirector
{
    /// <inheritdoc />
    public ValueTask<SiloAddress> PlaceAsync(PlacementContext context) =>
        ValueTask.FromResult(context.Ring.Owner(context.GrainId) ?? throw NoSilo(context));

    internal static GrainRoutingException NoSilo(PlacementContext context) =>
        new($"No active silo to place grain {context.GrainId} on (membership version {context.View.Version}).");
}

/// <summary>The deciding silo when it is active, else a random active one.</summary>
public sealed class PreferLocalPlacementDirector : IPlacementDirector
{
    /// <inheritdoc />
    public ValueTask<SiloAddress> PlaceAsync(PlacementContext context)
    {
        if (context.LocalSilo is not null && context.Ring.Contains(context.LocalSilo))
            return ValueTask.FromResult(context.LocalSilo);
        return new RandomPlacementDirector().PlaceAsync(context);
    }
}

/// <summary>A uniformly random active silo.</summary>
public sealed class RandomPlacementDirector : IPlacementDirector
{
    /// <inheritdoc />
    public ValueTask<SiloAddress> PlaceAsync(PlacementContext context)
    {
        var silos = context.ActiveSilos;
        if (silos.Count == 0) throw HashBasedPlacementDirector.NoSilo(context);
        return ValueTask.FromResult(silos[Random.Shared.Next(silos.Count)]);
    }
}

/// <summary>The active silo whose name (MembershipEntry.SiloName) equals the grain's key: a HostGrain lives on its own host's silo.</summary>
public sealed class SiloNamePlacementDirector : IPlacementDirector
{
    /// <inheritdoc />
    public ValueTask<SiloAddress> PlaceAsync(PlacementContext context)
    {
        foreach (var silo in context.ActiveSilos)
            if (context.View.Entries.TryGetValue(silo, out var e) && string.Equals(e.SiloName, context.GrainId.Key, StringComparison.Ordinal))
                return ValueTask.FromResult(silo);
        throw new GrainRoutingException($"Grain {context.GrainId} must live on the silo named '{context.GrainId.Key}', and no active silo has that name.");
    }
}

/// <summary>A director from a function (e.g. the VmGrain's: the silo of the host running the VM).</summary>
public sealed class DelegatePlacementDirector(Func<PlacementContext, ValueTask<SiloAddress>> place) : IPlacementDirector
{
    /// <inheritdoc />
    public ValueTask<SiloAddress> PlaceAsync(PlacementContext context) => place(context);
}
