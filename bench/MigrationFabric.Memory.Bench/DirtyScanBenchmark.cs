using System.Diagnostics;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Tracking;

namespace MigrationFabric.Memory.Bench;

/// <summary>Fetch-and-clear of the dirty log of a 4 GiB VM at several dirty densities: GB of guest memory covered per second.</summary>
public sealed class DirtyScanBenchmark : IMemoryBenchmark
{
    public string Name => "dirty-scan";
    public string Description => "dirty-bitmap fetch-and-clear over 4 GiB of guest memory (GB of guest memory scanned/s)";

    private struct CountingVisitor : IPageVisitor
    {
        public long Sum;
        public void Visit(long page) => Sum += page;
    }

    public Task RunAsync(string[] args, CancellationToken cancellationToken)
    {
        const long size = 4L << 30;
        const int iterations = 15;
        using var memory = new GuestMemory(size); // MAP_NORESERVE: the 4 GiB is address space, the bitmap is real
        var dirty = memory.Dirty;
        var rng = new Random(42);
        Console.WriteLine("FetchAndClear = the bitmap scan alone; HarvestDirty = what a pre-copy round uses while vCPUs run (scan into a scratch bitmap, process-wide barrier, visit)");
        Console.WriteLine($"guest memory {size >> 30} GiB = {memory.PageCount} pages, bitmap {dirty.WordCount} words ({dirty.WordCount * 8 / 1024} KiB); {iterations} rounds each, median");
        Console.WriteLine($"{"method",-14} {"density",8} {"dirty pages",12} {"median ms",10} {"guest GB/s",13} {"bitmap GB/s",12} {"Mpages/s out",13}");
        foreach (bool harvest in new[] { false, true })
        foreach (double density in new[] { 0.0, 0.001, 0.01, 0.1, 0.5, 1.0 })
        {
            var times = new double[iterations];
            long found = 0;
            for (int i = 0; i < iterations; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (density >= 1.0) dirty.SetAll();
                else
                {
                    long n = (long)(memory.PageCount * density);
                    for (long k = 0; k < n; k++) dirty.MarkDirty(rng.NextInt64(memory.PageCount));
                }
                var v = new CountingVisitor();
                long t0 = Stopwatch.GetTimestamp();
                found = harvest ? memory.HarvestDirty(ref v) : dirty.FetchAndClear(ref v);
                times[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                GC.KeepAlive(v.Sum);
            }
            Array.Sort(times);
            double ms = times[iterations / 2];
            Console.WriteLine($"{(harvest ? "HarvestDirty" : "FetchAndClear"),-14} {density,8:P1} {found,12} {ms,10:F3} {size / 1e9 / (ms / 1000),13:F0} {dirty.WordCount * 8 / 1e9 / (ms / 1000),12:F2} {found / 1e6 / (ms / 1000),13:F1}");
        }
        return Task.CompletedTask;
    }
}
