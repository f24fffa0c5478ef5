namespace MigrationFabric.Memory.Workloads;

/// <summary>A tiny PRNG (SplitMix64) whose whole state is one 64-bit word, so a vCPU can carry it in its registers across a migration.</summary>
/// <remarks>System.Random keeps hidden state that cannot be saved; this can, and a redone operation draws the same numbers again.</remarks>
public struct SplitMix64(ulong state)
{
    /// <summary>The whole generator state: the next draws follow from it alone.</summary>
    public ulong State = state;

    /// <summary>A generator seeded from a workload seed and a vCPU index (distinct streams per vCPU).</summary>
    public static SplitMix64 For(int seed, int vcpu, ulong salt) =>
        new(Mix(((ulong)(uint)seed << 32 | (uint)vcpu) ^ salt));

    /// <summary>The next 64 random bits.</summary>
    public ulong Next()
    {
        State += 0x9E3779B97F4A7C15UL;
        return Mix(State);
    }

    /// <summary>A number in [0, <paramref name="bound"/>) (<paramref name="bound"/> &gt; 0), by multiply-shift.</summary>
    public long NextInt64(long bound) => (long)Math.BigMul(Next(), (ulong)bound, out _);

    /// <summary>A number in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (Next() >> 11) * (1.0 / (1UL << 53));

    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
