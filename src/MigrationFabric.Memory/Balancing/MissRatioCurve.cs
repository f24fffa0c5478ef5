namespace MigrationFabric.Memory.Balancing;

/// <summary>A VM's miss-ratio curve: for each memory size, the fraction of re-references that would miss in an LRU memory of that size.</summary>
/// <param name="MemoryPages">Memory sizes in pages, ascending.</param>
/// <param name="MissRatio">Miss ratio at each size, non-increasing.</param>
/// <param name="References">Re-references (sampled accesses that were not first touches) the curve is built from, after decay.</param>
/// <param name="ColdMisses">First touches of sampled pages (compulsory misses, which no memory size avoids and the curve leaves out).</param>
public sealed record MissRatioCurve(long[] MemoryPages, double[] MissRatio, double References, double ColdMisses)
{
    /// <summary>The smallest memory size whose miss ratio is at most <paramref name="threshold"/>; 0 when nothing was re-referenced.</summary>
    public long DemandPages(double threshold)
    {
        if (References <= 0) return 0;
        for (var i = 0; i < MissRatio.Length; i++)
        {
            if (MissRatio[i] <= threshold) return MemoryPages[i];
        }
        return MemoryPages.Length == 0 ? 0 : MemoryPages[^1];
    }
}
