namespace MigrationFabric.Grains.GrainDirectory;

/// <summary>A hash every process computes alike (FNV-1a over UTF-16 code units, then a 64-bit finalizer mix).</summary>
public static class StableHash
{
    /// <summary>Hash of <paramref name="a"/> + '/' + <paramref name="b"/>.</summary>
    public static uint Of(string a, string b)
    {
        ulong h = 14695981039346656037UL;
        foreach (char c in a) h = (h ^ c) * 1099511628211UL;
        h = (h ^ '/') * 1099511628211UL;
        foreach (char c in b) h = (h ^ c) * 1099511628211UL;
        return Mix(h);
    }

    /// <summary>Hash of one string.</summary>
    public static uint Of(string a)
    {
        ulong h = 14695981039346656037UL;
        foreach (char c in a) h = (h ^ c) * 1099511628211UL;
        return Mix(h);
    }

    private static uint Mix(ulong h)
    {
        // FNV alone clusters short keys that differ in the last character; the murmur finalizer spreads them over the ring.
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdUL;
        h ^= h >> 33;
        h *= 0xc4ceb9fe1a85ec53UL;
        h ^= h >> 33;
        return (uint)h ^ (uint)(h >> 32);
    }
}
