namespace MigrationFabric.Memory.Balancing;

/// <summary>LRU stack distances of accesses to a fixed set of items: how many distinct other items were accessed since an item's previous access.</summary>
/// <remarks>
/// Each access gets an increasing stamp; an item's distance is the number of items whose last stamp
/// is newer than its own, counted in O(log n) with a Fenwick tree over stamps. When the stamps run
/// out the live ones are renumbered in order (O(n log n) once every n accesses), so the cost stays
/// O(log n) amortized with no allocation after construction. Not thread-safe.
/// </remarks>
public sealed class LruStackDistance
{
    private readonly int[] _stampOf;
    private readonly int[] _fenwick;
    private readonly int[] _itemAtStamp;
    private int _clock;
    private int _live;

    /// <summary>Tracks items 0 .. <paramref name="itemCount"/> - 1, none accessed yet.</summary>
    public LruStackDistance(int itemCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(itemCount);
        ItemCount = itemCount;
        _stampOf = new int[itemCount];
        var capacity = Math.Max(2 * itemCount, 64);
        _fenwick = new int[capacity + 1];
        _itemAtStamp = new int[capacity + 1];
    }

    /// <summary>Items tracked.</summary>
    public int ItemCount { get; }

    /// <summary>Items accessed at least once.</summary>
    public int LiveItems => _live;

    /// <summary>Records an access to <paramref name="item"/>; returns its stack distance, or -1 on its first access (a cold miss).</summary>
    public int Access(int item)
    {
        if ((uint)item >= (uint)ItemCount)
            throw new ArgumentOutOfRangeException(nameof(item), item, $"item must be in 0..{ItemCount - 1}.");
        var old = _stampOf[item];
        int distance;
        if (old == 0)
        {
            distance = -1;
            _live++;
        }
        else
        {
            distance = _live - Prefix(old);
            Add(old, -1);
            _itemAtStamp[old] = -1;
        }
        if (_clock == _fenwick.Length - 1)
            Renumber();
        var stamp = ++_clock;
        _stampOf[item] = stamp;
        _itemAtStamp[stamp] = item;
        Add(stamp, +1);
        return distance;
    }

    /// <summary>Forgets every access.</summary>
    public void Reset()
    {
        Array.Clear(_stampOf);
        Array.Clear(_fenwick);
        Array.Clear(_itemAtStamp);
        _clock = 0;
        _live = 0;
    }

    private void Renumber()
    {
        // Live stamps keep their order; the item being accessed was already unlinked.
        var next = 0;
        for (var s = 1; s <= _clock; s++)
        {
            var item = _itemAtStamp[s];
            if (item < 0 || _stampOf[item] != s) continue;
            next++;
            _itemAtStamp[next] = item;
            _stampOf[item] = next;
        }
        Array.Clear(_itemAtStamp, next + 1, _itemAtStamp.Length - next - 1);
        Array.Clear(_fenwick);
        for (var s = 1; s <= next; s++) Add(s, +1);
        _clock = next;
    }

    private int Prefix(int stamp)
    {
        var sum = 0;
        for (var i = stamp; i > 0; i -= i & -i) sum += _fenwick[i];
        return sum;
    }

    private void Add(int stamp, int delta)
    {
        for (var i = stamp; i < _fenwick.Length; i += i & -i) _fenwick[i] += delta;
    }
}
