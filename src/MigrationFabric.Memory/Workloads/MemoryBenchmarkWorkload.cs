using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;

namespace MigrationFabric.Memory.Workloads;

/// <summary>Sequential writes over all of (a region of) guest memory, sweep after sweep; throughput in bytes/s (the papers' memory benchmark).</summary>
/// <remarks>Each vCPU sweeps its own contiguous slice, a whole page per store, so every sweep dirties every page.</remarks>
public sealed class MemoryBenchmarkWorkload(MemoryBenchmarkOptions? options = null, TimeProvider? time = null)
    : Workload("membench", "bytes/s", (options ?? new()).Vcpus, (options ?? new()).SampleInterval, time)
{
    private readonly MemoryBenchmarkOptions _options = options ?? new();
    private long _pages, _sweeps;

    /// <summary>Full sweeps completed, summed over vCPUs.</summary>
    public long Sweeps => Volatile.Read(ref _sweeps);

    /// <inheritdoc/>
    protected override void Prepare(SoftwareMmu mmu)
    {
        long total = mmu.Memory.PageCount;
        _options.ValidateRegion("membench", total, 1);
        _pages = _options.Pages ?? total - _options.StartPage;
        if (_pages < Vcpus) throw new ArgumentException($"membench: Pages {_pages} must be at least Vcpus ({Vcpus}).", nameof(MemoryBenchmarkOptions.Pages));
        _options.ValidateRegion("membench", total, _pages);
    }

    /// <inheritdoc/>
    protected override void RunVcpu(VirtualCpu cpu, int index, CancellationToken cancellationToken)
    {
        long per = _pages / Vcpus;
        long first = _options.StartPage + index * per;
        long count = index == Vcpus - 1 ? _pages - index * per : per;
        Span<byte> pattern = stackalloc byte[Page.Size];
        for (long sweep = 1; ; sweep++)
        {
            pattern.Fill((byte)(sweep * 31 + index));
            int pending = 0;
            for (long p = first; p < first + count; p++)
            {
                cpu.Write(p << Page.Shift, pattern);
                // Count in batches: per-page accounting would be measurable next to a 4 KiB store.
                if (++pending == 64)
                {
                    Count(index, 64L * Page.Size);
                    pending = 0;
                    if (cancellationToken.IsCancellationRequested) return;
                }
            }
            Count(index, (long)pending * Page.Size);
            Interlocked.Increment(ref _sweeps);
        }
    }
}
