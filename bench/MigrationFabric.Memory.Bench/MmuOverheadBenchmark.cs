using System.Diagnostics;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Workloads;

namespace MigrationFabric.Memory.Bench;

/// <summary>Sequential 4 KiB-page writes over guest memory, raw span vs through the software MMU, interleaved in one run.</summary>
public sealed class MmuOverheadBenchmark : IMemoryBenchmark
{
    public string Name => "mmu-overhead";
    public string Description => "memory benchmark through the software MMU vs raw span writes, same memory, same run (goal: < 10% slower)";

    public async Task RunAsync(string[] args, CancellationToken cancellationToken)
    {
        long size = (args.Length > 0 ? long.Parse(args[0]) : 1024) << 20;
        const int reps = 21;
        using var memory = new GuestMemory(size);
        using var mmu = new SoftwareMmu(memory);
        using var cpu = mmu.CreateVcpu(cancellationToken);
        var pattern = new byte[Page.Size];
        long pages = memory.PageCount;

        // Warm-up: make every page resident (first touch) and JIT every path.
        SweepMmu(cpu, pattern, pages, 1);
        SweepRaw(memory, pattern, pages, 1);

        // Interleaved, order rotated every repetition, and compared pairwise: on a shared, noisy machine a ratio
        // of neighbours in time is steadier than a ratio of separate medians.
        var raw = new double[reps];
        var mmuKept = new double[reps];
        var mmuCleared = new double[reps];
        for (int r = 0; r < reps; r++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            for (int k = 0; k < 3; k++)
            {
                switch ((r + k) % 3)
                {
                    case 0: raw[r] = Time(() => SweepRaw(memory, pattern, pages, (byte)(r + 2))); break;
                    case 1: mmuKept[r] = Time(() => SweepMmu(cpu, pattern, pages, (byte)(r + 3))); break;
                    default:
                        memory.Dirty.ClearAll(); // as after a pre-copy round: every write must set its bit again
                        mmuCleared[r] = Time(() => SweepMmu(cpu, pattern, pages, (byte)(r + 4)));
                        break;
                }
            }
        }
        double gb = size / 1e9;
        double rawMed = Median(raw), keptMed = Median(mmuKept), clearedMed = Median(mmuCleared);
        double keptRatio = Median(mmuKept.Select((t, i) => t / raw[i]).ToArray());
        double clearedRatio = Median(mmuCleared.Select((t, i) => t / raw[i]).ToArray());
        Console.WriteLine($"guest memory {size >> 20} MiB, {reps} repetitions of one sweep per variant (order rotated), medians; overhead = median of per-repetition time ratios");
        Console.WriteLine($"  raw span writes:                     {rawMed * 1000,8:F1} ms  {gb / rawMed,6:F2} GB/s");
        Console.WriteLine($"  MMU writes (dirty bits already set): {keptMed * 1000,8:F1} ms  {gb / keptMed,6:F2} GB/s  overhead {(keptRatio - 1) * 100,5:F1}%");
        Console.WriteLine($"  MMU writes (dirty log cleared):      {clearedMed * 1000,8:F1} ms  {gb / clearedMed,6:F2} GB/s  overhead {(clearedRatio - 1) * 100,5:F1}%");

        // The workload itself (own vCPU thread, 100 ms samples) in pairs with raw sweeps of the same duration.
        const int pairs = 5;
        var ratios = new double[pairs];
        for (int i = -1; i < pairs; i++) // pair -1 warms up the workload's code (tiered JIT) and is not counted
        {
            var w = new MemoryBenchmarkWorkload();
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            cts.CancelAfter(TimeSpan.FromMilliseconds(800));
            await w.RunAsync(mmu, cts.Token);
            var rates = w.Timeline.Snapshot().Where(x => x.Elapsed > TimeSpan.FromMilliseconds(150)).Select(x => x.PerSecond).ToArray();
            double workloadRate = Median(rates);
            long bytes = 0;
            long t0 = Stopwatch.GetTimestamp();
            while (Stopwatch.GetElapsedTime(t0) < TimeSpan.FromMilliseconds(800)) { SweepRaw(memory, pattern, pages, (byte)i); bytes += size; }
            double rawRate = bytes / Stopwatch.GetElapsedTime(t0).TotalSeconds;
            if (i < 0) continue;
            ratios[i] = rawRate / workloadRate;
            Console.WriteLine($"  pair {i}: MemoryBenchmarkWorkload {workloadRate / 1e9,6:F2} GB/s (median 100 ms sample)  raw {rawRate / 1e9,6:F2} GB/s");
        }
        Console.WriteLine($"  MemoryBenchmarkWorkload overhead vs raw (median of {pairs} pairs): {(Median(ratios) - 1) * 100:F1}%");
    }

    private static void SweepRaw(GuestMemory memory, byte[] pattern, long pages, byte fill)
    {
        pattern.AsSpan().Fill(fill);
        const int chunk = 1 << 16; // pages per span (256 MiB)
        for (long first = 0; first < pages; first += chunk)
        {
            int n = (int)Math.Min(chunk, pages - first);
            var span = memory.GetRangeBytes(first, n);
            for (int p = 0; p < n; p++) pattern.CopyTo(span.Slice(p * Page.Size, Page.Size));
        }
    }

    private static void SweepMmu(VirtualCpu cpu, byte[] pattern, long pages, byte fill)
    {
        pattern.AsSpan().Fill(fill);
        for (long p = 0; p < pages; p++) cpu.Write(p << Page.Shift, pattern);
    }

    private static double Time(Action a)
    {
        long t0 = Stopwatch.GetTimestamp();
        a();
        return Stopwatch.GetElapsedTime(t0).TotalSeconds;
    }

    private static double Median(double[] xs)
    {
        var c = (double[])xs.Clone();
        Array.Sort(c);
        return c[c.Length / 2];
    }
}
