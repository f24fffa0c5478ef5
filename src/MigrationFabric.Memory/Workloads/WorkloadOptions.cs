using MigrationFabric.Memory.Pages;

namespace MigrationFabric.Memory.Workloads;

/// <summary>Options every workload has.</summary>
public abstract class WorkloadOptions
{
    /// <summary>vCPU threads. Default 1.</summary>
    public int Vcpus { get; set; } = 1;

    /// <summary>Throughput sample period. Default 100 ms.</summary>
    public TimeSpan SampleInterval { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>First guest page the workload uses. Default 0.</summary>
    public long StartPage { get; set; }

    /// <summary>Throws naming the first option that does not fit <paramref name="pageCount"/> pages of guest memory.</summary>
    internal void ValidateRegion(string workload, long pageCount, long pagesNeeded)
    {
        if (StartPage < 0 || StartPage >= pageCount)
            throw new ArgumentException($"{workload}: StartPage {StartPage} is outside guest memory of {pageCount} pages.", nameof(StartPage));
        if (pagesNeeded > pageCount - StartPage)
            throw new ArgumentException(
                $"{workload}: needs {pagesNeeded} pages ({pagesNeeded * (long)Page.Size} bytes) from StartPage {StartPage}, but guest memory has {pageCount} pages.");
    }
}

/// <summary>Options of <see cref="IdleWorkload"/>.</summary>
public sealed class IdleWorkloadOptions : WorkloadOptions { }

/// <summary>Options of <see cref="MemoryBenchmarkWorkload"/>.</summary>
public sealed class MemoryBenchmarkOptions : WorkloadOptions
{
    /// <summary>Pages swept from StartPage; null sweeps to the end of guest memory. Default null.</summary>
    public long? Pages { get; set; }
}

/// <summary>Options of <see cref="HotSetWorkload"/>.</summary>
public sealed class HotSetOptions : WorkloadOptions
{
    /// <summary>Working set as a fraction of guest memory (from StartPage), W% of the papers. Default 0.1.</summary>
    public double WorkingSetFraction { get; set; } = 0.1;

    /// <summary>Page writes per second across all vCPUs; 0 writes as fast as possible. Default 10 000.</summary>
    public double TargetDirtyPagesPerSecond { get; set; } = 10_000;

    /// <summary>Seed of the page choice. Default 1.</summary>
    public int Seed { get; set; } = 1;
}

/// <summary>Options of <see cref="KeyValueStoreWorkload"/>.</summary>
public sealed class KeyValueStoreOptions : WorkloadOptions
{
    /// <summary>Distinct keys per vCPU shard. Default 10 000.</summary>
    public int Keys { get; set; } = 10_000;

    /// <summary>Value size in bytes, a multiple of 8 from 16 to 4096. Default 256.</summary>
    public int ValueBytes { get; set; } = 256;

    /// <summary>Fraction of operations that are GETs (the rest SETs). Default 0.9, memcached-like.</summary>
    public double GetFraction { get; set; } = 0.9;

    /// <summary>SET every key once before measuring, so GETs hit. Default true.</summary>
    public bool Preload { get; set; } = true;

    /// <summary>Seed of the key and operation choice. Default 1.</summary>
    public int Seed { get; set; } = 1;
}

/// <summary>Options of <see cref="MemorySpikeWorkload"/>.</summary>
public sealed class MemorySpikeOptions : WorkloadOptions
{
    /// <summary>Pages written continuously before and after the spike (the steady footprint). Default 1024 (4 MiB).</summary>
    public long BasePages { get; set; } = 1024;

    /// <summary>Pages added to the footprint at once when the spike fires. Default 2048 (8 MiB).</summary>
    public long SpikePages { get; set; } = 2048;

    /// <summary>When the spike fires by itself after start; null waits for <see cref="MemorySpikeWorkload.TriggerSpike"/>. Default null.</summary>
    public TimeSpan? SpikeAfter { get; set; }
}
