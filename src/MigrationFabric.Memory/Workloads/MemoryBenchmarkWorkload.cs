using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;

namespace MigrationFabric.Memory.Workloads;

/// <summary>Sequential writes over all of (a region of) guest memory, sweep after sweep; throughput in bytes/s (the papers' memory benchmark).</summary>
/// <remarks>Each vCPU sweeps its own contiguous slice, a whole page per store, so every sweep dirties every page.</remarks>
public sealed class MemoryBenchmarkWorkload(MemoryBenchmarkOptions? options = null, TimeProvider? time = null)
    : Workload("membench", "bytes/s", (options ?? new()).Vcpus, (options ?? new()).SampleInterval, time)
{
    private readonly MemoryBenchmarkOptions _options = options ?? new();
    private long _pages;

    /// <summary>Full sweeps completed, summed over vCPUs (carried across a migration with the vCPU state).</summary>
    public long Sweeps
    {
        get
        {
            long n = 0;
            for (int i = 0; i < Vcpus; i++)
                if (StateOf(i) is Registers r) n += Volatile.Read(ref r.Sweep) - 1;
            return n;
        }
    }

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
    protected override VcpuState CreateVcpuState(int index) => new Registers();

    /// <inheritdoc/>
    protected override void RunVcpu(VirtualCpu cpu, int index, CancellationToken cancellationToken)
    {
        var r = (Registers)StateOf(index)!;
        long per = _pages / Vcpus;
        long first = _options.StartPage + index * per;
        long count = index == Vcpus - 1 ? _pages - index * per : per;
        if (r.Cursor >= count)
            throw new InvalidDataException($"membench: vCPU {index}'s cursor {r.Cursor} is beyond its slice of {count} pages (restored state does not fit).");
        Span<byte> pattern = stackalloc byte[Page.Size];
        while (true)
        {
            pattern.Fill((byte)(r.Sweep * 31 + index));
            // One operation is up to 64 pages of the sweep (the granularity the benchmark always counted in): redoing
            // them from the last commit after a migration writes the same pattern into the same pages.
            long from = r.Cursor, to = Math.Min(count, from + 64);
            for (long p = from; p < to; p++) cpu.Write((first + p) << Page.Shift, pattern);
            BeginCommit(index);
            if (to == count)
            {
                r.Cursor = 0;
                Volatile.Write(ref r.Sweep, r.Sweep + 1);
            }
            else r.Cursor = to;
            EndCommit(index, (to - from) * Page.Size);
            if (cancellationToken.IsCancellationRequested) return;
        }
    }

    /// <summary>A vCPU's sweep number (from 1; it picks the byte pattern) and its next page within its slice.</summary>
    private sealed class Registers : VcpuState
    {
        public long Sweep = 1, Cursor;

        public override void Save(BinaryWriter w)
        {
            w.Write(Sweep);
            w.Write(Cursor);
        }

        public override void Load(BinaryReader r)
        {
            Sweep = r.ReadInt64();
            Cursor = r.ReadInt64();
            if (Sweep < 1 || Cursor < 0) throw new InvalidDataException($"membench vCPU state has sweep {Sweep} and cursor {Cursor}: sweeps start at 1, cursors at 0.");
        }
    }
}
