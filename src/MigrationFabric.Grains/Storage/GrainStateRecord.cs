namespace MigrationFabric.Grains.Storage;

/// <summary>What a store holds for one key: the serialized state and its etag (both null when there is no record).</summary>
public sealed record GrainStateRecord(ReadOnlyMemory<byte> Data, string? Etag)
{
    /// <summary>The answer for a key with no record.</summary>
    public static GrainStateRecord Missing { get; } = new(ReadOnlyMemory<byte>.Empty, null);

    /// <summary>True when a record exists.</summary>
    public bool Exists => Etag is not null;
}
