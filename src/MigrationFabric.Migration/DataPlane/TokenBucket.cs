namespace MigrationFabric.Migration.DataPlane;

/// <summary>A bandwidth cap: bytes may go out at <see cref="BytesPerSecond"/> on average with bursts up to <see cref="BurstBytes"/>.</summary>
/// <remarks>A taker that finds too few tokens reserves them anyway (the balance goes negative) and waits for the refill, so large batches are never starved by small ones.</remarks>
public sealed class TokenBucket
{
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private double _tokens;
    private long _lastRefill;

    /// <summary>Creates a full bucket.</summary>
    public TokenBucket(long bytesPerSecond, long burstBytes, TimeProvider? time = null)
    {
        if (bytesPerSecond <= 0) throw new ArgumentOutOfRangeException(nameof(bytesPerSecond), bytesPerSecond, "the rate must be positive.");
        if (burstBytes <= 0) throw new ArgumentOutOfRangeException(nameof(burstBytes), burstBytes, "the burst must be positive.");
        BytesPerSecond = bytesPerSecond;
        BurstBytes = burstBytes;
        _time = time ?? TimeProvider.System;
        _tokens = burstBytes;
        _lastRefill = _time.GetTimestamp();
    }

    /// <summary>Average rate allowed.</summary>
    public long BytesPerSecond { get; }

    /// <summary>Largest burst allowed.</summary>
    public long BurstBytes { get; }

    /// <summary>Takes <paramref name="bytes"/>, waiting until the rate allows them.</summary>
    public ValueTask TakeAsync(long bytes, CancellationToken cancellationToken)
    {
        TimeSpan wait;
        lock (_lock)
        {
            long now = _time.GetTimestamp();
            _tokens = Math.Min(BurstBytes, _tokens + _time.GetElapsedTime(_lastRefill, now).TotalSeconds * BytesPerSecond);
            _lastRefill = now;
            _tokens -= bytes;
            if (_tokens >= 0) return ValueTask.CompletedTask;
            wait = TimeSpan.FromSeconds(-_tokens / BytesPerSecond);
        }
        return new ValueTask(Task.Delay(wait, _time, cancellationToken));
    }
}
