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

    /// <summary>Completes with how long touching all spike pages took, once they are all in the footprint (on the host where the spike ran: a migration carries the footprint, not this task).</summary>
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
    protected override VcpuState CreateVcpuState(int index) => new Registers(this) { Footprint = _options.BasePages };

    /// <inheritdoc/>
    protected override void RunVcpu(VirtualCpu cpu, int index, CancellationToken cancellationToken)
    {
        var r = (Registers)StateOf(index)!;
        long basePage = _options.StartPage;
        long spikeEnd = _options.BasePages + _options.SpikePages;
        if (r.Footprint != _options.BasePages && r.Footprint != spikeEnd || r.Cursor > spikeEnd)
            throw new InvalidDataException($"spike: footprint {r.Footprint} / cursor {r.Cursor} do not fit BasePages {_options.BasePages} and SpikePages {_options.SpikePages} (restored state does not fit).");
        long t0 = Time.GetTimestamp();
        while (!cancellationToken.IsCancellationRequested)
        {
            // One operation: a page write of the pass (or of the spike's first touch), then its commit.
            if (r.Cursor < (r.InSpike ? spikeEnd : r.Footprint))
            {
                ulong stamp = r.Stamp + 1;
                cpu.WriteUInt64((basePage + r.Cursor) << Page.Shift, stamp);
                BeginCommit(index);
                r.Stamp = stamp;
                r.Cursor++;
                EndCommit(index, 1);
                continue;
            }
            // End of a pass: the only places the footprint changes (commits without a memory access).
            if (r.InSpike)
            {
                BeginCommit(index);
                r.InSpike = false;
                r.Spiked = true;
                r.Footprint = spikeEnd;
                r.Cursor = 0;
                EndCommit(index, 0);
                _spiked.TrySetResult(Time.GetElapsedTime(t0));
                continue;
            }
            if (!r.Spiked && _trigger.IsSet)
            {
                t0 = Time.GetTimestamp();
                BeginCommit(index);
                r.InSpike = true;
                EndCommit(index, 0);
                continue;
            }
            bool release = r.Spiked && !r.Released && _releaseRequested;
            BeginCommit(index);
            r.Cursor = 0;
            if (release)
            {
                r.Footprint = _options.BasePages;
                r.Released = true;
            }
            EndCommit(index, 0);
            if (release)
            {
                freePages?.ReportFree(basePage + _options.BasePages, _options.SpikePages);
                _released.TrySetResult();
            }
        }
    }

    /// <summary>The vCPU's stamp, pass cursor, footprint and spike progress, plus the spike and release requests not yet acted on (pending inputs).</summary>
    private sealed class Registers(MemorySpikeWorkload owner) : VcpuState
    {
        public ulong Stamp;
        public long Cursor, Footprint;
        public bool InSpike, Spiked, Released;

        public override void Save(BinaryWriter w)
        {
            w.Write(Stamp);
            w.Write(Cursor);
            w.Write(Footprint);
            w.Write((byte)((InSpike ? 1 : 0) | (Spiked ? 2 : 0) | (Released ? 4 : 0)
                | (owner._trigger.IsSet ? 8 : 0) | (owner._releaseRequested ? 16 : 0)));
        }

        public override void Load(BinaryReader r)
        {
            Stamp = r.ReadUInt64();
            Cursor = r.ReadInt64();
            Footprint = r.ReadInt64();
            int flags = r.ReadByte();
            if (flags > 31 || Cursor < 0) throw new InvalidDataException($"spike vCPU state has flags 0x{flags:x2} and cursor {Cursor}: not a state this workload writes.");
            InSpike = (flags & 1) != 0;
            Spiked = (flags & 2) != 0;
            Released = (flags & 4) != 0;
            if ((flags & 8) != 0) owner._trigger.Set();
            if ((flags & 16) != 0) owner._releaseRequested = true;
        }
    }
}
