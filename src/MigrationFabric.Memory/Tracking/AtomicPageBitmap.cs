using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace MigrationFabric.Memory.Tracking;

/// <summary>One bit per guest page in 64-bit words, set and harvested atomically by many threads.</summary>
public class AtomicPageBitmap
{
    private readonly ulong[] _words;

    /// <summary>Creates an all-clear bitmap for <paramref name="pageCount"/> pages.</summary>
    public AtomicPageBitmap(long pageCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(pageCount);
        PageCount = pageCount;
        _words = new ulong[(pageCount + 63) >> 6];
    }

    /// <summary>Pages covered.</summary>
    public long PageCount { get; }

    /// <summary>64-bit words in the bitmap (the unit a scan reads and clears).</summary>
    public int WordCount => _words.Length;

    /// <summary>Sets the page's bit; returns true if this call changed it from clear to set.</summary>
    /// <remarks>Reads first so an already-set bit costs no locked instruction and no cache-line ownership.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Set(long page)
    {
        ref ulong word = ref WordRef(page);
        ulong bit = 1UL << (int)(page & 63);
        if ((Volatile.Read(ref word) & bit) != 0) return false;
        return (Interlocked.Or(ref word, bit) & bit) == 0;
    }

    /// <summary>Whether the page's bit is set.</summary>
    public bool IsSet(long page)
    {
        CheckPage(page);
        return (Volatile.Read(ref WordRef(page)) & (1UL << (int)(page & 63))) != 0;
    }

    /// <summary>Clears the page's bit and returns whether it was set (sampling: "was it touched since I last looked?").</summary>
    public bool TestAndClear(long page)
    {
        CheckPage(page);
        ref ulong word = ref WordRef(page);
        ulong bit = 1UL << (int)(page & 63);
        if ((Volatile.Read(ref word) & bit) == 0) return false;
        return (Interlocked.And(ref word, ~bit) & bit) != 0;
    }

    /// <summary>Clears the page's bit.</summary>
    public void Clear(long page) => TestAndClear(page);

    /// <summary>Sets the bit of every page (e.g. "everything is dirty" before the first pre-copy round).</summary>
    public void SetAll()
    {
        for (int i = 0; i < _words.Length; i++) Interlocked.Exchange(ref _words[i], ulong.MaxValue);
        TrimTail();
    }

    /// <summary>Clears every bit.</summary>
    public void ClearAll()
    {
        for (int i = 0; i < _words.Length; i++) Interlocked.Exchange(ref _words[i], 0);
    }

    /// <summary>Number of set bits (a racy snapshot while writers run).</summary>
    public long CountSet()
    {
        long n = 0;
        foreach (var w in _words) n += BitOperations.PopCount(Volatile.Read(in w));
        return n;
    }

    /// <summary>Atomically takes and clears every set bit, visiting each taken page once; returns how many.</summary>
    /// <remarks>
    /// Whole words are swapped with zero, so a bit set concurrently is either taken by this scan or
    /// stays set for the next one: never lost. Clean words cost one plain read.
    /// </remarks>
    public long FetchAndClear<TVisitor>(ref TVisitor visitor) where TVisitor : struct, IPageVisitor
        => FetchAndClear(0, PageCount, ref visitor);

    /// <summary>As <see cref="FetchAndClear{TVisitor}(ref TVisitor)"/> over pages [first, first + count).</summary>
    public long FetchAndClear<TVisitor>(long first, long count, ref TVisitor visitor) where TVisitor : struct, IPageVisitor
    {
        CheckRange(first, count);
        if (count == 0) return 0;
        long end = first + count;
        long taken = 0;
        ref ulong words = ref MemoryMarshal.GetArrayDataReference(_words);
        long w = first >> 6, lastWord = (end - 1) >> 6;
        for (; w <= lastWord; w++)
        {
            ref ulong word = ref Unsafe.Add(ref words, (nint)w);
            if (word == 0) continue;
            ulong mask = ulong.MaxValue;
            if (w == first >> 6) mask &= ulong.MaxValue << (int)(first & 63);
            if (w == lastWord && (end & 63) != 0) mask &= ulong.MaxValue >> (64 - (int)(end & 63));
            ulong bits = mask == ulong.MaxValue ? Interlocked.Exchange(ref word, 0) : Interlocked.And(ref word, ~mask) & mask;
            long basePage = w << 6;
            taken += BitOperations.PopCount(bits);
            while (bits != 0)
            {
                visitor.Visit(basePage + BitOperations.TrailingZeroCount(bits));
                bits &= bits - 1;
            }
        }
        return taken;
    }

    /// <summary>Atomically takes and clears every set bit into <paramref name="destination"/> (OR-ed in); returns how many were taken.</summary>
    public long FetchAndClearInto(AtomicPageBitmap destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        if (destination.PageCount != PageCount)
            throw new ArgumentException($"destination covers {destination.PageCount} pages, this bitmap {PageCount}.", nameof(destination));
        long taken = 0;
        for (int i = 0; i < _words.Length; i++)
        {
            if (_words[i] == 0) continue;
            ulong bits = Interlocked.Exchange(ref _words[i], 0);
            if (bits == 0) continue;
            taken += BitOperations.PopCount(bits);
            Interlocked.Or(ref destination._words[i], bits);
        }
        return taken;
    }

    /// <summary>Visits every set bit without clearing it.</summary>
    public void ForEachSet<TVisitor>(ref TVisitor visitor) where TVisitor : struct, IPageVisitor
    {
        for (int i = 0; i < _words.Length; i++)
        {
            ulong bits = Volatile.Read(ref _words[i]);
            long basePage = (long)i << 6;
            while (bits != 0)
            {
                visitor.Visit(basePage + BitOperations.TrailingZeroCount(bits));
                bits &= bits - 1;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ref ulong WordRef(long page)
        => ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_words), (nint)(page >> 6));

    private void TrimTail()
    {
        int tail = (int)(PageCount & 63);
        if (tail != 0) Interlocked.And(ref _words[^1], ulong.MaxValue >> (64 - tail));
    }

    private void CheckPage(long page)
    {
        if ((ulong)page >= (ulong)PageCount)
            throw new ArgumentOutOfRangeException(nameof(page), page, $"page {page} is outside the bitmap's {PageCount} pages.");
    }

    private void CheckRange(long first, long count)
    {
        if (first < 0 || count < 0 || first > PageCount - count)
            throw new ArgumentOutOfRangeException(nameof(count), $"pages [{first}, {first + count}) are outside the bitmap's {PageCount} pages.");
    }
}
