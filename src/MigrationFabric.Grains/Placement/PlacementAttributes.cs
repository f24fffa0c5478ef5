namespace MigrationFabric.Grains.Placement;

/// <summary>Base of the placement attributes on grain classes; read once when the grain type is registered.</summary>
[AttributeUsage(AttributeTargets.Class, Inherited = true)]
public abstract class PlacementAttribute : Attribute
{
    /// <summary>The director this attribute names (<paramref name="named"/>: directors added by name on the silo builder).</summary>
    public abstract IPlacementDirector Resolve(IReadOnlyDictionary<string, IPlacementDirector> named);
}

/// <summary>Place on the silo owning the grain's hash (the default).</summary>
public sealed class HashBasedPlacementAttribute : PlacementAttribute
{
    /// <inheritdoc />
    public override IPlacementDirector Resolve(IReadOnlyDictionary<string, IPlacementDirector> named) => new HashBasedPlacementDirector();
}

/// <summary>Place on the calling silo.</summary>
public sealed class PreferLocalPlacementAttribute : PlacementAttribute
{
    /// <inheritdoc />
    public override IPlacementDirector Resolve(IReadOnlyDictionary<string, IPlacementDirector> named) => new PreferLocalPlacementDirector();
}

/// <summary>Place on a random active silo.</summary>
public sealed class RandomPlacementAttribute : PlacementAttribute
{
    /// <inheritdoc />
    public override IPlacementDirector Resolve(IReadOnlyDictionary<string, IPlacementDirector> named) => new RandomPlacementDirector();
}

/// <summary>Place on the silo whose name equals the grain's key.</summary>
public sealed class SiloNamePlacementAttribute : PlacementAttribute
{
    /// <inheritdoc />
    public override IPlacementDirector Resolve(IReadOnlyDictionary<string, IPlacementDirector> named) => new SiloNamePlacementDirector();
}

/// <summary>Place with the director added on the silo builder under <paramref name="name"/>.</summary>
public sealed class PlacementDirectorAttribute(string name) : PlacementAttribute
{
    /// <summary>The director's name.</summary>
    public string Name { get; } = name;

    /// <inheritdoc />
    public override IPlacementDirector Resolve(IReadOnlyDictionary<string, IPlacementDirector> named) =>
        named.TryGetValue(Name, out var d) ? d
            : throw new InvalidOperationException($"[PlacementDirector(\"{Name}\")]: no director was added under that name (SiloBuilder.AddPlacementDirector).");
}
