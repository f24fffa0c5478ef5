namespace MigrationFabric.Migration.DataPlane;

/// <summary>What a migration's data plane has moved so far (thread-safe, read at any time).</summary>
public sealed class DataPlaneCounters
{
    private long _bytes, _pages, _zeroPages, _batches, _acked;

    /// <summary>Bytes of serialized page batches written to the wire.</summary>
    public long BytesSent => Volatile.Read(ref _bytes);

    /// <summary>Pages sent (zero pages included).</summary>
    public long PagesSent => Volatile.Read(ref _pages);

    /// <summary>Pages sent as a zero flag only.</summary>
    public long ZeroPagesSent => Volatile.Read(ref _zeroPages);

    /// <summary>Batches written.</summary>
    public long BatchesSent => Volatile.Read(ref _batches);

    /// <summary>Batches the receiver has applied and acknowledged.</summary>
    public long BatchesAcked => Volatile.Read(ref _acked);

    internal void AddBatch(long bytes, int pages, int zeroPages)
    {
        Interlocked.Add(ref _bytes, bytes);
        Interlocked.Add(ref _pages, pages);
        Interlocked.Add(ref _zeroPages, zeroPages);
        Interlocked.Increment(ref _batches);
    }

    internal void AddAcked(long batches) => Interlocked.Add(ref _acked, batches);
}
