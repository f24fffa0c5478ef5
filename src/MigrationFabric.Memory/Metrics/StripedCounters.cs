namespace MigrationFabric.Memory.Metrics;

/// <summary>A fixed set of counters kept once per stripe of processors, so threads on different cores never write the same cache line; a read sums the stripes.</summary>
/// <remarks>
/// For counters moved on every page by several streams at once: one shared Interlocked counter bounces its cache line
/// between the cores (a profile put ~90 ns a page on two such counts). A stripe's value may go negative (counted in on
/// one core, out on another); the sum is exact once the writers are done, and as good as a shared counter's meanwhile.
/// </remarks>
public sealed class StripedCounters
{
    // 128 bytes per stripe: a set never shares a cache line (or its prefetch pair) with another stripe's.
    private const int Stride = 16;
    private readonly long[] _values;
    private readonly int _stripeMask;

    /// <summary>Creates <paramref name="count"/> counters (at most 16), all zero, with a stripe per processor up to 64.</summary>
    public StripedCounters(int count)
    {
        if (count is < 1 or > Stride)
            throw new ArgumentOutOfRangeException(nameof(count), count, $"a striped counter set holds 1 to {Stride} counters.");
        Count = count;
        var stripes = (int)Math.Min(64, System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Environment.ProcessorCount));
        _stripeMask = stripes - 1;
        _values = new long[stripes * Stride];
    }

    /// <summary>Number of counters.</summary>
    public int Count { get; }

    /// <summary>Adds <paramref name="value"/> to counter <paramref name="counter"/> on the calling thread's processor's stripe.</summary>
    public void Add(int counter, long value) => Interlocked.Add(ref _values[StripeBase() + Checked(counter)], value);

    /// <summary>Adds one to counter <paramref name="counter"/>.</summary>
    public void Increment(int counter) => Interlocked.Increment(ref _values[StripeBase() + Checked(counter)]);

    /// <summary>Subtracts one from counter <paramref name="counter"/>.</summary>
    public void Decrement(int counter) => Interlocked.Decrement(ref _values[StripeBase() + Checked(counter)]);

    /// <summary>Moves one from counter <paramref name="from"/> to counter <paramref name="to"/> on one stripe.</summary>
    public void Move(int from, int to)
    {
        // Both checked before either moves: a refused move changes nothing.
        var (f, t, b) = (Checked(from), Checked(to), StripeBase());
        Interlocked.Decrement(ref _values[b + f]);
        Interlocked.Increment(ref _values[b + t]);
    }

    /// <summary>Counter <paramref name="counter"/>'s value: the sum over the stripes.</summary>
    public long Read(int counter)
    {
        Checked(counter);
        long n = 0;
        for (var i = counter; i < _values.Length; i += Stride) n += Volatile.Read(ref _values[i]);
        return n;
    }

    private int StripeBase() => (Thread.GetCurrentProcessorId() & _stripeMask) * Stride;

    private int Checked(int counter) =>
        (uint)counter < (uint)Count ? counter : throw new ArgumentOutOfRangeException(nameof(counter), counter, $"this set has counters 0 to {Count - 1}.");
}
