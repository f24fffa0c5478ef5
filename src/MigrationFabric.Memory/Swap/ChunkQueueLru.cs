using System.Numerics;

namespace MigrationFabric.Memory.Swap;

/// <summary>The VMemDirect 2^m chunk-queue LRU that decides which memory chunks are paged out.</summary>
/// <remarks>
/// Queues are numbered 0 (least recently used) to 2^m - 1 (most recently used); inside a queue the
/// head is the oldest chunk. The operations, exactly:
/// <list type="bullet">
/// <item><see cref="Append"/> (page-in): an untracked chunk goes to the tail of the last queue.</item>
/// <item><see cref="Touch"/> (accessed): a chunk in queue i is unlinked and appended to the tail of
/// queue min(i + 2^(m-1), 2^m - 1), also when that is the queue it is already in.</item>
/// <item><see cref="Age"/> (compress 2^m queues into 2^(m-1)): for every k &lt; 2^(m-1), the new
/// queue k is the old queue 2k followed by the old queue 2k+1, each keeping its internal order;
/// queues 2^(m-1) .. 2^m - 1 become empty. A chunk in queue i is therefore in queue i / 2 after it.</item>
/// <item><see cref="TryTakeVictim"/> (page-out): the head of the first non-empty queue is unlinked
/// and returned.</item>
/// <item><see cref="Remove"/>: a tracked chunk is unlinked wherever it is.</item>
/// </list>
/// Every operation is O(1) except <see cref="Age"/>, which is O(2^m) and independent of the number of
/// chunks: a chunk's queue is not rewritten on aging but derived from the queue it was placed in and
/// how many agings happened since (queue &gt;&gt; agings). Lists are intrusive over arrays indexed by
/// chunk number, so no operation allocates. Not thread-safe: the owner serializes calls.
/// </remarks>
public sealed class ChunkQueueLru
{
    private const int None = -1;

    private readonly int[] _next;
    private readonly int[] _prev;
    private readonly int[] _placedQueue;
    private readonly int[] _placedAt;
    private readonly int[] _head;
    private readonly int[] _tail;
    private readonly int[] _queueLength;
    private readonly ulong[] _nonEmpty;
    private int _ages;

    /// <summary>Creates an empty LRU over chunks 0 .. <paramref name="chunkCount"/> - 1 with 2^<paramref name="queueBits"/> queues.</summary>
    public ChunkQueueLru(int chunkCount, int queueBits = 8)
    {
        if (chunkCount <= 0)
            throw new ArgumentOutOfRangeException(nameof(chunkCount), chunkCount, "chunkCount must be positive.");
        if (queueBits is < 1 or > 16)
            throw new ArgumentOutOfRangeException(nameof(queueBits), queueBits, "queueBits (m) must be between 1 and 16.");
        ChunkCount = chunkCount;
        QueueBits = queueBits;
        QueueCount = 1 << queueBits;
        _next = new int[chunkCount];
        _prev = new int[chunkCount];
        _placedQueue = new int[chunkCount];
        _placedAt = new int[chunkCount];
        Array.Fill(_placedQueue, None);
        _head = new int[QueueCount];
        _tail = new int[QueueCount];
        Array.Fill(_head, None);
        Array.Fill(_tail, None);
        _queueLength = new int[QueueCount];
        _nonEmpty = new ulong[(QueueCount + 63) / 64];
    }

    /// <summary>Number of chunks this LRU can track.</summary>
    public int ChunkCount { get; }

    /// <summary>m: there are 2^m queues.</summary>
    public int QueueBits { get; }

    /// <summary>2^m.</summary>
    public int QueueCount { get; }

    /// <summary>Number of chunks currently tracked.</summary>
    public int Count { get; private set; }

    /// <summary>Whether <paramref name="chunk"/> is in some queue.</summary>
    public bool Contains(int chunk)
    {
        CheckChunk(chunk);
        return _placedQueue[chunk] != None;
    }

    /// <summary>The queue <paramref name="chunk"/> is in, or -1 when it is not tracked.</summary>
    public int QueueOf(int chunk)
    {
        CheckChunk(chunk);
        return _placedQueue[chunk] == None ? None : CurrentQueue(chunk);
    }

    /// <summary>Number of chunks in queue <paramref name="queue"/>.</summary>
    public int QueueLength(int queue)
    {
        CheckQueue(queue);
        return _queueLength[queue];
    }

    /// <summary>Page-in: appends an untracked chunk to the tail of the last (most recently used) queue.</summary>
    public void Append(int chunk)
    {
        CheckChunk(chunk);
        if (_placedQueue[chunk] != None)
            throw new InvalidOperationException($"Chunk {chunk} is already in queue {CurrentQueue(chunk)}; page-in appends only untracked chunks.");
        LinkTail(QueueCount - 1, chunk);
        Count++;
    }

    /// <summary>Records an access: moves a tracked chunk from queue i to the tail of queue min(i + 2^(m-1), last).</summary>
    public void Touch(int chunk)
    {
        CheckChunk(chunk);
        if (_placedQueue[chunk] == None)
            throw new InvalidOperationException($"Chunk {chunk} is not tracked; only chunks in a queue can be touched.");
        var from = CurrentQueue(chunk);
        Unlink(from, chunk);
        LinkTail(Math.Min(from + (QueueCount >> 1), QueueCount - 1), chunk);
    }

    /// <summary>Touches <paramref name="chunk"/> when tracked; returns whether it was.</summary>
    public bool TryTouch(int chunk)
    {
        CheckChunk(chunk);
        if (_placedQueue[chunk] == None)
            return false;
        Touch(chunk);
        return true;
    }

    /// <summary>Aging: compresses 2^m queues into 2^(m-1) (queues 2k and 2k+1 become queue k, 2k first).</summary>
    public void Age()
    {
        var half = QueueCount >> 1;
        for (var k = 0; k < half; k++)
        {
            int h0 = _head[2 * k], t0 = _tail[2 * k], h1 = _head[2 * k + 1], t1 = _tail[2 * k + 1];
            if (h0 != None && h1 != None)
            {
                _next[t0] = h1;
                _prev[h1] = t0;
            }
            _head[k] = h0 != None ? h0 : h1;
            _tail[k] = t1 != None ? t1 : t0;
            _queueLength[k] = _queueLength[2 * k] + _queueLength[2 * k + 1];
        }
        for (var q = half; q < QueueCount; q++)
        {
            _head[q] = None;
            _tail[q] = None;
            _queueLength[q] = 0;
        }
        Array.Clear(_nonEmpty);
        for (var q = 0; q < half; q++)
        {
            if (_queueLength[q] != 0)
                _nonEmpty[q >> 6] |= 1UL << (q & 63);
        }

        if (_ages == int.MaxValue)
            Rebase();
        _ages++;
    }

    /// <summary>Page-out victim selection: unlinks and returns the head of the first non-empty queue.</summary>
    public bool TryTakeVictim(out int chunk)
    {
        if (!TryPeekVictim(out chunk))
            return false;
        Unlink(CurrentQueue(chunk), chunk);
        Count--;
        return true;
    }

    /// <summary>The chunk <see cref="TryTakeVictim"/> would return, without taking it.</summary>
    public bool TryPeekVictim(out int chunk)
    {
        for (var w = 0; w < _nonEmpty.Length; w++)
        {
            if (_nonEmpty[w] != 0)
            {
                chunk = _head[(w << 6) + BitOperations.TrailingZeroCount(_nonEmpty[w])];
                return true;
            }
        }
        chunk = None;
        return false;
    }

    /// <summary>Unlinks a chunk wherever it is; returns false when it was not tracked.</summary>
    public bool Remove(int chunk)
    {
        CheckChunk(chunk);
        if (_placedQueue[chunk] == None)
            return false;
        Unlink(CurrentQueue(chunk), chunk);
        Count--;
        return true;
    }

    /// <summary>Copies queue <paramref name="queue"/> head to tail into <paramref name="destination"/> (diagnostics and tests).</summary>
    public int CopyQueue(int queue, Span<int> destination)
    {
        CheckQueue(queue);
        var n = 0;
        for (var c = _head[queue]; c != None; c = _next[c])
            destination[n++] = c;
        return n;
    }

    private int CurrentQueue(int chunk)
    {
        var agedBy = _ages - _placedAt[chunk];
        return agedBy >= 31 ? 0 : _placedQueue[chunk] >> agedBy;
    }

    private void LinkTail(int queue, int chunk)
    {
        var tail = _tail[queue];
        _prev[chunk] = tail;
        _next[chunk] = None;
        if (tail == None)
        {
            _head[queue] = chunk;
            _nonEmpty[queue >> 6] |= 1UL << (queue & 63);
        }
        else
        {
            _next[tail] = chunk;
        }
        _tail[queue] = chunk;
        _queueLength[queue]++;
        _placedQueue[chunk] = queue;
        _placedAt[chunk] = _ages;
    }

    private void Unlink(int queue, int chunk)
    {
        int prev = _prev[chunk], next = _next[chunk];
        if (prev == None) _head[queue] = next; else _next[prev] = next;
        if (next == None) _tail[queue] = prev; else _prev[next] = prev;
        if (--_queueLength[queue] == 0)
            _nonEmpty[queue >> 6] &= ~(1UL << (queue & 63));
        _placedQueue[chunk] = None;
    }

    // Keeps the age arithmetic in range after 2^31 agings; O(chunks) once in that many calls.
    private void Rebase()
    {
        for (var c = 0; c < ChunkCount; c++)
        {
            if (_placedQueue[c] == None)
                continue;
            _placedQueue[c] = CurrentQueue(c);
            _placedAt[c] = -1;
        }
        _ages = -1;
    }

    private void CheckChunk(int chunk)
    {
        if ((uint)chunk >= (uint)ChunkCount)
            throw new ArgumentOutOfRangeException(nameof(chunk), chunk, $"Chunk number must be in 0..{ChunkCount - 1}.");
    }

    private void CheckQueue(int queue)
    {
        if ((uint)queue >= (uint)QueueCount)
            throw new ArgumentOutOfRangeException(nameof(queue), queue, $"Queue number must be in 0..{QueueCount - 1}.");
    }
}
