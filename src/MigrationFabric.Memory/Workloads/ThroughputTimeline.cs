namespace MigrationFabric.Memory.Workloads;

/// <summary>One throughput measurement: the rate over the interval ending <see cref="Elapsed"/> after the workload started.</summary>
/// <param name="Elapsed">End of the interval, from the workload's start.</param>
/// <param name="PerSecond">Operations (or bytes, or pages: see the workload's unit) per second over the interval.</param>
public readonly record struct ThroughputSample(TimeSpan Elapsed, double PerSecond);

/// <summary>A workload's throughput over time, appended by its sampler every interval (the seed papers' VM-performance metric).</summary>
public sealed class ThroughputTimeline
{
    private readonly List<ThroughputSample> _samples = [];
    private readonly Lock _lock = new();

    /// <summary>Creates an empty timeline measured in <paramref name="unit"/>.</summary>
    public ThroughputTimeline(string unit) => Unit = unit;

    /// <summary>What <see cref="ThroughputSample.PerSecond"/> counts, e.g. "bytes/s", "ops/s", "pages/s".</summary>
    public string Unit { get; }

    /// <summary>Samples so far.</summary>
    public int Count
    {
        get { lock (_lock) return _samples.Count; }
    }

    /// <summary>A copy of the samples so far, oldest first.</summary>
    public ThroughputSample[] Snapshot()
    {
        lock (_lock) return [.. _samples];
    }

    internal void Add(ThroughputSample sample)
    {
        lock (_lock) _samples.Add(sample);
    }
}
