using MigrationFabric.Grains.Invocation;
using MigrationFabric.Grains.Placement;

namespace MigrationFabric.Grains.Activation;

/// <summary>How a silo builds one grain type: the interface it serves, its class, a factory, its placement and reentrancy.</summary>
public sealed class GrainTypeRegistration
{
    /// <summary>Creates a registration; <paramref name="factory"/> builds an instance given the activation's context.</summary>
    public GrainTypeRegistration(GrainInterfaceDescriptor descriptor, Type grainClass, Func<IGrainContext, Grain> factory, IPlacementDirector placement)
    {
        Descriptor = descriptor;
        GrainClass = grainClass;
        Factory = factory;
        Placement = placement;
        // Read once at registration, never per call.
        IsReentrant = grainClass.IsDefined(typeof(ReentrantAttribute), inherit: true);
    }

    /// <summary>The grain interface (its name is the grain type of the id).</summary>
    public GrainInterfaceDescriptor Descriptor { get; }

    /// <summary>The implementation class.</summary>
    public Type GrainClass { get; }

    /// <summary>Builds an instance.</summary>
    public Func<IGrainContext, Grain> Factory { get; }

    /// <summary>Chooses the silo of a new activation.</summary>
    public IPlacementDirector Placement { get; }

    /// <summary>True when the class is [Reentrant].</summary>
    public bool IsReentrant { get; }
}
