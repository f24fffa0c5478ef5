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
        const int reps = 7;
        using var memory = new GuestMemory(size);
        using var mmu = new SoftwareMmu(memory);
        using var cpu = mmu.CreateVcpu(cancellationToken);
        var pattern = new byte[Page.Size];
        long pages = memory.PageCount;

        // Warm-up: make every page resident (first touch) and JIT every path.
        SweepMmu(cpu, pattern, pages, 1);
        SweepRaw(memory, pattern, pages, 1);

        var raw = new double[reps];
        var mmuKept = new double[reps];
        var mmuCleared = new double[reps];
        for (int r = 0; r < reps; r++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            raw[r] = Time(() => SweepRaw(memory, pattern, pages, (byte)(r + 2)));
            mmuKept[r] = Time(() => SweepMmu(cpu, pattern, pages, (byte)(r + 3)));
            memory.Dirty.ClearAll(); // as after a pre-copy round: every write must set its bit again
            mmuCleared[r] = Time(() => SweepMmu(cpu, pattern, pages, (byte)(r + 4)));
        }
        double gb = size / 1e9;
        double rawMed = Median(raw), keptMed = Median(mmuKept), clearedMed = Median(mmuCleared);
        Console.WriteLine($"guest memory {size >> 20} MiB, {reps} interleaved sweeps each, median sweep time");
        Console.WriteLine($"  raw span writes:                    {rawMed * 1000,8:F1} ms  {gb / rawMed,6:F2} GB/s");
        Console.WriteLine($"  MMU writes (dirty bits already set): {keptMed * 1000,8:F1} ms  {gb / keptMed,6:F2} GB/s  overhead {(keptMed / rawMed - 1) * 100,5:F1}%");
        Console.WriteLine($"  MMU writes (dirty log cleared):      {clearedMed * 1000,8:F1} ms  {gb / clearedMed,6:F2} GB/s  overhead {(clearedMed / rawMed - 1) * 100,5:F1}%");

        // The workload itself (its own vCPU thread, 100 ms samples) against raw sweeps right after it.
        var w = new MemoryBenchmarkWorkload();
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(TimeSpan.FromSeconds(3));
        await w.RunAsync(mmu, cts.Token);
        var samples = w.Timeline.Snapshot();
        var rates = samples.Where(s => s.Elapsed > TimeSpan.FromMilliseconds(250)).Select(s => s.PerSecond).Order().ToArray();
        double workloadGbs = rates.Length == 0 ? 0 : rates[rates.Length / 2] / 1e9;
        var rawAfter = new double[reps];
        for (int r = 0; r < reps; r++) rawAfter[r] = Time(() => SweepRaw(memory, pattern, pages, (byte)r));
        double rawAfterGbs = gb / Median(rawAfter);
        Console.WriteLine($"  MemoryBenchmarkWorkload (3 s, {samples.Length} samples, median 100 ms sample): {workloadGbs:F2} GB/s vs raw {rawAfterGbs:F2} GB/s right after: overhead {(rawAfterGbs / workloadGbs - 1) * 100:F1}%");
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
