namespace MigrationFabric.Grains.Storage;

/// <summary>A write or clear lost an optimistic-concurrency race: the stored etag is not the one the caller held.</summary>
public sealed class InconsistentStateException : Exception
{
    /// <summary>Creates the exception for <paramref name="key"/>.</summary>
    public InconsistentStateException(GrainStateKey key, string? expectedEtag, string? storedEtag)
        : base($"Grain state '{key}' changed underneath: expected etag '{expectedEtag ?? "<no record>"}', store has '{storedEtag ?? "<no record>"}'. Re-read the state and retry.")
    {
        Key = key;
        ExpectedEtag = expectedEtag;
        StoredEtag = storedEtag;
    }

    /// <summary>The state that conflicted.</summary>
    public GrainStateKey Key { get; }

    /// <summary>The etag the caller held (null: it expected no record).</summary>
    public string? ExpectedEtag { get; }

    /// <summary>The etag found in the store (null: no record), when the store knows it.</summary>
    public string? StoredEtag { get; }
}
