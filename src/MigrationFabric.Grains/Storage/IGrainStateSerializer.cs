namespace MigrationFabric.Grains.Storage;

/// <summary>Turns a grain's state into bytes for a store and back.</summary>
public interface IGrainStateSerializer
{
    /// <summary>Serializes <paramref name="state"/>.</summary>
    byte[] Serialize<T>(T state);

    /// <summary>Deserializes a value serialized by <see cref="Serialize{T}"/>; throws a clear error on bad data.</summary>
    T Deserialize<T>(ReadOnlySpan<byte> data);
}
