using System.Diagnostics;
using System.Numerics;

namespace MigrationFabric.Memory.Metrics;

/// <summary>Log-bucketed latency histogram (HDR-like, ~6% resolution) recording without allocation from many threads.</summary>
/// <remarks>
/// Values are nanoseconds. Bucket = (power of two, one of 16 linear sub-buckets), so relative error is
/// at most 1/16 and the whole range 1 ns .. 2^63 ns fits in 64 * 16 counters.
/// </remarks>
public sealed class LatencyHistogram
{
    private const int SubBits = 4;
    private const int SubCount = 1 << SubBits;
    private readonly long[] _counts = new long[64 * SubCount];
    private long _total, _sumNs, _maxNs;

    /// <summary>Values recorded.</summary>
    public long Count => Volatile.Read(ref _total);

    /// <summary>Largest value recorded, in nanoseconds.</summary>
    public long MaxNanoseconds => Volatile.Read(ref _maxNs);

    /// <summary>Mean in nanoseconds (0 when empty).</summary>
    public double MeanNanoseconds => Count == 0 ? 0 : (double)Volatile.Read(ref _sumNs) / Count;

    /// <summary>Records the time since a <see cref="Stopwatch.GetTimestamp"/> value.</summary>
    public void RecordSince(long startTimestamp)
        => Record((long)(Stopwatch.GetElapsedTime(startTimestamp).Ticks * 100L));

    /// <summary>Records one value in nanoseconds (negative counts as 0).</summary>
    public void Record(long nanoseconds)
    {
        if (nanoseconds < 0) nanoseconds = 0;
        Interlocked.Increment(ref _counts[BucketOf(nanoseconds)]);
        Interlocked.Increment(ref _total);
        Interlocked.Add(ref _sumNs, nanoseconds);
        long max;
        while (nanoseconds > (max = Volatile.Read(ref _maxNs)) && Interlocked.CompareExchange(ref _maxNs, nanoseconds, max) != max) { }
    }

    /// <summary>Value at quantile <paramref name="q"/> (0..1) in nanoseconds: the upper edge of the bucket holding it; 0 when empty.</summary>
    public long PercentileNanoseconds(double q)
    {
        if (q is < 0 or > 1 || double.IsNaN(q)) throw new ArgumentOutOfRangeException(nameof(q), q, "quantile must be within 0..1.");
        long total = Count;
        if (total == 0) return 0;
        long rank = Math.Max(1, (long)Math.Ceiling(q * total));
        long seen = 0;
        for (int b = 0; b < _counts.Length; b++)
        {
            seen += Volatile.Read(ref _counts[b]);
            if (seen >= rank) return Math.Min(UpperEdge(b), MaxNanoseconds);
        }
        return MaxNanoseconds;
    }

    /// <summary>Median.</summary>
    public TimeSpan P50 => TimeSpan.FromTicks(PercentileNanoseconds(0.50) / 100);

    /// <summary>99th percentile.</summary>
    public TimeSpan P99 => TimeSpan.FromTicks(PercentileNanoseconds(0.99) / 100);

    /// <summary>Forgets everything recorded.</summary>
    public void Reset()
    {
        for (int i = 0; i < _counts.Length; i++) Interlocked.Exchange(ref _counts[i], 0);
        Interlocked.Exchange(ref _total, 0);
        Interlocked.Exchange(ref _sumNs, 0);
        Interlocked.Exchange(ref _maxNs, 0);
    }

    private static int BucketOf(long v)
    {
        if (v < SubCount) return (int)v;
        int exp = 63 - BitOperations.LeadingZeroCount((ulong)v);   // v in [2^exp, 2^(exp+1))
        int sub = (int)((v >> (exp - SubBits)) & (SubCount - 1));
        return (exp - SubBits + 1) * SubCount + sub;
    }

    private static long UpperEdge(int bucket)
    {
        if (bucket < SubCount) return bucket;
        int exp = bucket / SubCount + SubBits - 1;
        int sub = bucket % SubCount;
        long lower = (1L << exp) + ((long)sub << (exp - SubBits));
        return lower + (1L << (exp - SubBits)) - 1;
    }
}
