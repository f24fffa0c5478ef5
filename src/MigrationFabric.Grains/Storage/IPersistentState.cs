namespace MigrationFabric.Grains.Storage;

/// <summary>A grain's persistent state of type <typeparamref name="T"/> (Orleans' IPersistentState shape).</summary>
public interface IPersistentState<T>
{
    /// <summary>The in-memory state; a fresh value when no record exists.</summary>
    T State { get; set; }

    /// <summary>The etag of the record last read or written; null when there is none.</summary>
    string? Etag { get; }

    /// <summary>True when the store holds a record for this state.</summary>
    bool RecordExists { get; }

    /// <summary>Replaces <see cref="State"/> with the stored record (or a fresh value when none).</summary>
    Task ReadStateAsync(CancellationToken cancellationToken = default);

    /// <summary>Stores <see cref="State"/>; throws <see cref="InconsistentStateException"/> if another writer won.</summary>
    Task WriteStateAsync(CancellationToken cancellationToken = default);

    /// <summary>Deletes the record and resets <see cref="State"/>; throws <see cref="InconsistentStateException"/> if another writer won.</summary>
    Task ClearStateAsync(CancellationToken cancellationToken = default);
}
