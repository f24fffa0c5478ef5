namespace MigrationFabric.Memory.Balancing;

/// <summary>Options of a VM's memory-demand monitor (VMMB, seed 002).</summary>
public sealed class DemandMonitorOptions
{
    /// <summary>Time between two samples of the access bits (one epoch). Default 100 ms.</summary>
    public TimeSpan SamplingInterval { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>One page in this many is sampled (chosen by a hash of the page number, so strides in the guest do not alias). Default 16.</summary>
    public int SampleEvery { get; set; } = 16;

    /// <summary>Most pages sampled; a larger VM samples more sparsely so an epoch's cost stays bounded. Default 16384.</summary>
    public int MaxSampledPages { get; set; } = 16384;

    /// <summary>The demand is the smallest memory whose miss ratio is at most this. Default 0.05 (5% of re-references miss).</summary>
    public double MissRatioThreshold { get; set; } = 0.05;

    /// <summary>Epochs between halvings of the stack-distance histogram, so the curve follows phase changes. Default 50 (5 s at the default interval).</summary>
    public int DecayEveryEpochs { get; set; } = 50;

    /// <summary>Epochs a sampled page seen accessed stays in <see cref="DemandMonitor.RecentAccess"/> (the monitor cleared its access bit). Default 10 (1 s at the default interval).</summary>
    public int RecentEpochs { get; set; } = 10;

    /// <summary>Seed of the page-sampling hash. Default 0x9E3779B9.</summary>
    public ulong SamplingSeed { get; set; } = 0x9E3779B9;

    /// <summary>Clock for the periodic sampling. Default <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    /// <summary>Throws an exception naming the first invalid option.</summary>
    public void Validate()
    {
        if (SamplingInterval <= TimeSpan.Zero)
            throw new ArgumentException($"DemandMonitorOptions.SamplingInterval must be positive, was {SamplingInterval}.", nameof(SamplingInterval));
        if (SampleEvery < 1)
            throw new ArgumentException($"DemandMonitorOptions.SampleEvery must be at least 1, was {SampleEvery}.", nameof(SampleEvery));
        if (MaxSampledPages < 1)
            throw new ArgumentException($"DemandMonitorOptions.MaxSampledPages must be at least 1, was {MaxSampledPages}.", nameof(MaxSampledPages));
        if (double.IsNaN(MissRatioThreshold) || MissRatioThreshold < 0 || MissRatioThreshold >= 1)
            throw new ArgumentException($"DemandMonitorOptions.MissRatioThreshold must be within [0, 1), was {MissRatioThreshold}.", nameof(MissRatioThreshold));
        if (DecayEveryEpochs < 1)
            throw new ArgumentException($"DemandMonitorOptions.DecayEveryEpochs must be at least 1, was {DecayEveryEpochs}.", nameof(DecayEveryEpochs));
        if (RecentEpochs < 1)
            throw new ArgumentException($"DemandMonitorOptions.RecentEpochs must be at least 1, was {RecentEpochs}.", nameof(RecentEpochs));
        ArgumentNullException.ThrowIfNull(TimeProvider, nameof(TimeProvider));
    }
}
