using MigrationFabric.Memory.Ballooning;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;

namespace MigrationFabric.Memory.Workloads;

/// <summary>A steady footprint that grows by N pages at once when the spike fires, then keeps using all of it; throughput in page writes/s.</summary>
/// <remarks>
/// The spike touches every new page as fast as it can: pages the balloon holds are deflated on touch by the
/// MMU, so the spike never waits on ballooning. <see cref="Release"/> ends the spike and reports its pages
/// free (to the <see cref="FreePageReport"/> if one was given) so the balloon can take them back.
/// </remarks>
public sealed class MemorySpikeWorkload(MemorySpikeOptions? options = null, FreePageReport? freePages = null, TimeProvider? time = null)
    : Workload("spike", "pages/s", 1, (options ?? new()).SampleInterval, time)
{
    private readonly MemorySpikeOptions _options = options ?? new();
    private readonly ManualResetEventSlim _trigger = new();
    private readonly TaskCompletionSource<TimeSpan> _spiked = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile bool _releaseRequested;
    private ITimer? _spikeTimer;

    /// <summary>Completes with how long touching all spike pages took, once they are all in the footprint.</summary>
    public Task<TimeSpan> Spiked => _spiked.Task;

    /// <summary>Completes once the spike pages were given back after <see cref="Release"/>.</summary>
    public Task Released => _released.Task;

    /// <summary>Fires the spike now.</summary>
    public void TriggerSpike() => _trigger.Set();

    /// <summary>Shrinks the footprint back to the base pages and reports the spike pages free.</summary>
    public void Release() => _releaseRequested = true;

    /// <inheritdoc/>
    protected override void Prepare(SoftwareMmu mmu)
    {
        if (_options.Vcpus != 1) throw new ArgumentException("spike: Vcpus must be 1.", nameof(MemorySpikeOptions.Vcpus));
        if (_options.BasePages < 1) throw new ArgumentException($"spike: BasePages must be at least 1, was {_options.BasePages}.", nameof(MemorySpikeOptions.BasePages));
        if (_options.SpikePages < 1) throw new ArgumentException($"spike: SpikePages must be at least 1, was {_options.SpikePages}.", nameof(MemorySpikeOptions.SpikePages));
        _options.ValidateRegion("spike", mmu.Memory.PageCount, _options.BasePages + _options.SpikePages);
        if (_options.SpikeAfter is { } after)
            _spikeTimer = Time.CreateTimer(_ => _trigger.Set(), null, after, Timeout.InfiniteTimeSpan);
    }

    /// <inheritdoc/>
    protected override void RunVcpu(VirtualCpu cpu, int index, CancellationToken cancellationToken)
    {
        long basePage = _options.StartPage;
        long spikePage = basePage + _options.BasePages;
        long footprint = _options.BasePages;
        ulong stamp = 0;
        bool spiked = false, released = false;
        while (!cancellationToken.IsCancellationRequested)
        {
            for (long p = basePage; p < basePage + footprint; p++)
            {
                cpu.WriteUInt64(p << Page.Shift, ++stamp);
                Count(index, 1);
                if ((p & 255) == 0 && cancellationToken.IsCancellationRequested) return;
            }
            if (!spiked && _trigger.IsSet)
            {
                long t0 = Time.GetTimestamp();
                for (long p = spikePage; p < spikePage + _options.SpikePages; p++)
                {
                    cpu.WriteUInt64(p << Page.Shift, ++stamp);
                    Count(index, 1);
                }
                footprint += _options.SpikePages;
                spiked = true;
                _spiked.TrySetResult(Time.GetElapsedTime(t0));
            }
            if (spiked && !released && _releaseRequested)
            {
                footprint = _options.BasePages;
                freePages?.ReportFree(spikePage, _options.SpikePages);
                released = true;
                _released.TrySetResult();
            }
        }
    }
}
