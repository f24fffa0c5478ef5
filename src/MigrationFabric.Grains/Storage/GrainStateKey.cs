namespace MigrationFabric.Grains.Storage;

/// <summary>Names one stored state: the state's name (a grain may have several) and the grain's id.</summary>
public sealed record GrainStateKey
{
    /// <summary>Creates a key; both parts must be non-empty.</summary>
    public GrainStateKey(string stateName, string grainId)
    {
        ArgumentException.ThrowIfNullOrEmpty(stateName);
        ArgumentException.ThrowIfNullOrEmpty(grainId);
        StateName = stateName;
        GrainId = grainId;
    }

    /// <summary>The state's name, e.g. "vm".</summary>
    public string StateName { get; }

    /// <summary>The grain's id as text, e.g. "VmGrain/vm-17".</summary>
    public string GrainId { get; }

    /// <inheritdoc />
    public override string ToString() => $"{StateName}:{GrainId}";
}
