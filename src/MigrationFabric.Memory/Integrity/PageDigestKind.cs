namespace MigrationFabric.Memory.Integrity;

/// <summary>Which 64-bit hash a page digest is: both ends of a transfer must use the same one.</summary>
public enum PageDigestKind
{
    /// <summary>XXH64, seed 0 (<see cref="Xxh64"/>).</summary>
    Xxh64 = 1,

    /// <summary>XXH3-64, seed 0, default secret (<see cref="Xxh3"/>): vectorized, about twice as fast per page.</summary>
    Xxh3 = 2,
}
