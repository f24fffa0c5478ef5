using System.Diagnostics;

namespace MigrationFabric.Rpc.Bench;

/// <summary>What one run cost the process: wall time, CPU time (both ends live in this process), allocations and GCs.</summary>
internal readonly record struct RunCost(double Seconds, double CpuSeconds, long AllocatedBytes, int Gen0, int Gen1, int Gen2)
{
    public static async Task<RunCost> MeasureAsync(Func<Task> run)
    {
        using var process = Process.GetCurrentProcess();
        var cpu = process.TotalProcessorTime;
        var allocated = GC.GetTotalAllocatedBytes(precise: false);
        var (g0, g1, g2) = (GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2));
        var started = Stopwatch.GetTimestamp();
        await run();
        var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        process.Refresh();
        return new RunCost(
            seconds,
            (process.TotalProcessorTime - cpu).TotalSeconds,
            GC.GetTotalAllocatedBytes(precise: false) - allocated,
            GC.CollectionCount(0) - g0,
            GC.CollectionCount(1) - g1,
            GC.CollectionCount(2) - g2);
    }
}
