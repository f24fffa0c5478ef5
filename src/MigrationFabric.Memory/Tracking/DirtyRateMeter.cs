namespace MigrationFabric.Memory.Tracking;

/// <summary>Dirty rate in pages per second over a sliding window, from the dirty log's clear-to-set count.</summary>
/// <remarks>
/// A page re-written while still dirty counts once, as in QEMU's dirty-rate calculation; between
/// fetch-and-clear rounds that is the rate that matters, since only newly dirtied pages must be re-sent.
/// Time comes from a TimeProvider so tests can drive it.
/// </remarks>
public sealed class DirtyRateMeter
{
    private readonly DirtyBitmap _bitmap;
    private readonly TimeProvider _time;
    private readonly TimeSpan _window;
    private readonly (long Timestamp, long Count)[] _ring;
    private readonly Lock _lock = new();
    private int _head, _filled;

    /// <summary>Creates a meter over <paramref name="bitmap"/> averaging the last <paramref name="window"/>.</summary>
    public DirtyRateMeter(DirtyBitmap bitmap, TimeSpan window, TimeProvider? time = null, int capacity = 64)
    {
        ArgumentNullException.ThrowIfNull(bitmap);
        if (window <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(window), window, "window must be positive.");
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 2);
        _bitmap = bitmap;
        _window = window;
        _time = time ?? TimeProvider.System;
        _ring = new (long, long)[capacity];
    }

    /// <summary>Records the current count; call periodically (e.g. every 100 ms) or per pre-copy round.</summary>
    public void Sample()
    {
        long now = _time.GetTimestamp();
        long count = _bitmap.NewlyDirtiedTotal;
        lock (_lock)
        {
            _ring[_head] = (now, count);
            _head = (_head + 1) % _ring.Length;
            if (_filled < _ring.Length) _filled++;
        }
    }

    /// <summary>Pages newly dirtied per second between the oldest sample inside the window and the newest; 0 until two samples exist.</summary>
    public double PagesPerSecond
    {
        get
        {
            lock (_lock)
            {
                if (_filled < 2) return 0;
                int newest = (_head - 1 + _ring.Length) % _ring.Length;
                var (tNew, cNew) = _ring[newest];
                var (tOld, cOld) = (tNew, cNew);
                for (int i = 1; i < _filled; i++)
                {
                    var s = _ring[(newest - i + _ring.Length) % _ring.Length];
                    if (_time.GetElapsedTime(s.Timestamp, tNew) > _window) break;
                    (tOld, cOld) = s;
                }
                var elapsed = _time.GetElapsedTime(tOld, tNew);
                return elapsed <= TimeSpan.Zero ? 0 : (cNew - cOld) / elapsed.TotalSeconds;
            }
        }
    }
}
