namespace MigrationFabric.Host.Migrations;

using MigrationFabric.Host.Grains;

/// <summary>How long a completed migration watches its workload at the destination for the report's recovery time.</summary>
public sealed class RecoveryWatchOptions
{
    /// <summary>How long after the resume the destination's throughput is watched for a recovery to 90% of the pre-migration level; the report says NOT_RECOVERED past it. Default 5 s (zero: read once, do not wait).</summary>
    public TimeSpan Window { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How often the destination's samples are read while waiting. Default 200 ms (the workloads sample every 100 ms).</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Clock of the wait. Default <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid option.</summary>
    public void Validate()
    {
        if (Window < TimeSpan.Zero || Window > TimeSpan.FromMinutes(10))
            throw new ArgumentException($"RecoveryWatchOptions.Window must be within 0..10 min, was {Window}.", nameof(Window));
        if (PollInterval <= TimeSpan.Zero)
            throw new ArgumentException($"RecoveryWatchOptions.PollInterval must be positive, was {PollInterval}.", nameof(PollInterval));
        ArgumentNullException.ThrowIfNull(TimeProvider, "RecoveryWatchOptions.TimeProvider");
    }
}

/// <summary>What the destination's workload did after the resume: its samples (null if they could not be read) and for how long it was watched.</summary>
public sealed record RecoveryObservation(WorkloadSamples? Destination, TimeSpan Watched, string? ReadError);

/// <summary>Reads a migrated workload's throughput at its destination until it is back at 90% of its pre-migration level or the window has passed.</summary>
public static class RecoveryWatch
{
    /// <summary>The 90% of DESIGN.md's "time until the workload recovers to 90% of its pre-migration level".</summary>
    public const double RecoveredFraction = 0.9;

    /// <summary>Watches until recovered, the window after <paramref name="resumedAt"/> has passed, or <paramref name="cancellationToken"/> (which only cuts the watch short).</summary>
    /// <param name="read">Reads the destination's samples (a HostGrain.Throughput call).</param>
    /// <param name="baselinePerSecond">The pre-migration level; 0 or less: nothing to recover to, so one read suffices.</param>
    public static async Task<RecoveryObservation> ObserveAsync(Func<Task<WorkloadSamples>> read, double baselinePerSecond, DateTimeOffset resumedAt,
        RecoveryWatchOptions options, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(read);
        options.Validate();
        var time = options.TimeProvider;
        var until = resumedAt + options.Window;
        WorkloadSamples? last = null;
        var lastReadAt = resumedAt;
        string? error = null;
        while (true)
        {
            try
            {
                last = await read().ConfigureAwait(false);
                lastReadAt = time.GetUtcNow();
                error = null;
            }
            catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                // The destination may be busy or briefly unreachable; what was read before still counts.
                error = e.Message;
            }
            if (baselinePerSecond <= 0 || (last is not null && FirstRecovered(last, baselinePerSecond) is not null)) break;
            var left = until - time.GetUtcNow();
            if (left <= TimeSpan.Zero || cancellationToken.IsCancellationRequested) break;
            try
            {
                await Task.Delay(left < options.PollInterval ? left : options.PollInterval, time, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
        var watched = lastReadAt - resumedAt;
        return new RecoveryObservation(last, watched < TimeSpan.Zero ? TimeSpan.Zero : watched, last is null ? error : null);
    }

    /// <summary>When the first sample at or above 90% of <paramref name="baselinePerSecond"/> was taken, or null.</summary>
    public static DateTimeOffset? FirstRecovered(WorkloadSamples samples, double baselinePerSecond)
    {
        if (baselinePerSecond <= 0) return null;
        for (int i = 0; i < samples.PerSecond.Length; i++)
            if (samples.PerSecond[i] >= RecoveredFraction * baselinePerSecond)
                return samples.StartedAt + TimeSpan.FromTicks(samples.ElapsedTicks[i]);
        return null;
    }
}
