using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;

namespace MigrationFabric.Memory.Workloads;

/// <summary>Random 8-byte writes to pages of a working set (W% of memory) at a target dirty rate; throughput in page writes/s.</summary>
public sealed class HotSetWorkload(HotSetOptions? options = null, TimeProvider? time = null)
    : Workload("hotset", "pages/s", (options ?? new()).Vcpus, (options ?? new()).SampleInterval, time)
{
    private readonly HotSetOptions _options = options ?? new();
    private long _workingSetPages;

    /// <summary>Pages in the working set (known once running).</summary>
    public long WorkingSetPages => _workingSetPages;

    /// <inheritdoc/>
    protected override void Prepare(SoftwareMmu mmu)
    {
        var o = _options;
        if (double.IsNaN(o.WorkingSetFraction) || o.WorkingSetFraction <= 0 || o.WorkingSetFraction > 1)
            throw new ArgumentException($"hotset: WorkingSetFraction must be within (0, 1], was {o.WorkingSetFraction}.", nameof(HotSetOptions.WorkingSetFraction));
        if (double.IsNaN(o.TargetDirtyPagesPerSecond) || o.TargetDirtyPagesPerSecond < 0)
            throw new ArgumentException($"hotset: TargetDirtyPagesPerSecond must be 0 (unlimited) or positive, was {o.TargetDirtyPagesPerSecond}.", nameof(HotSetOptions.TargetDirtyPagesPerSecond));
        _workingSetPages = Math.Max(1, (long)(mmu.Memory.PageCount * o.WorkingSetFraction));
        o.ValidateRegion("hotset", mmu.Memory.PageCount, _workingSetPages);
    }

    /// <inheritdoc/>
    protected override VcpuState CreateVcpuState(int index) => new Registers { Rng = SplitMix64.For(_options.Seed, index, 0x484F_5453_4554_2121UL) };

    /// <inheritdoc/>
    protected override void RunVcpu(VirtualCpu cpu, int index, CancellationToken cancellationToken)
    {
        var r = (Registers)StateOf(index)!;
        double perVcpuRate = _options.TargetDirtyPagesPerSecond / Vcpus;
        // Pacing is this host's schedule (it starts again after a migration); the registers carry what the guest computes.
        long start = Time.GetTimestamp();
        long done = 0;
        while (!cancellationToken.IsCancellationRequested)
        {
            if (perVcpuRate > 0)
            {
                // Pace against the schedule since start, so short stalls are caught up and the mean rate holds.
                double due = Time.GetElapsedTime(start).TotalSeconds * perVcpuRate;
                if (done >= due)
                {
                    double aheadMs = (done - due + 1) / perVcpuRate * 1000;
                    cancellationToken.WaitHandle.WaitOne(TimeSpan.FromMilliseconds(Math.Clamp(aheadMs, 0.05, 50)));
                    continue;
                }
            }
            var rng = r.Rng;
            long page = _options.StartPage + rng.NextInt64(_workingSetPages);
            long offset = rng.NextInt64(Page.Size / 8) * 8;
            ulong stamp = r.Stamp + 1;
            cpu.WriteUInt64((page << Page.Shift) + offset, stamp);
            BeginCommit(index);
            r.Rng = rng;
            r.Stamp = stamp;
            EndCommit(index, 1);
            done++;
        }
    }

    /// <summary>A vCPU's PRNG (which page and offset next) and the stamp it last wrote.</summary>
    private sealed class Registers : VcpuState
    {
        public SplitMix64 Rng;
        public ulong Stamp;

        public override void Save(BinaryWriter w)
        {
            w.Write(Rng.State);
            w.Write(Stamp);
        }

        public override void Load(BinaryReader r)
        {
            Rng.State = r.ReadUInt64();
            Stamp = r.ReadUInt64();
        }
    }
}
