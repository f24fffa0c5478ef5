using System.Diagnostics;
using System.Runtime.InteropServices;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Swap;

namespace MigrationFabric.Migration.PrivateMemory.Bench;

/// <summary>Measures this machine's swap write rate the way the private swap writes placed chunks: 1 MiB runs through a <see cref="PrivateSwapFile"/>, direct I/O or not as configured.</summary>
public static class SwapWriteProbe
{
    private const int RunPages = 256;

    /// <summary>Writes a <paramref name="mib"/> MiB swap file in <paramref name="directory"/> (null: the temp directory) in 1 MiB runs, <paramref name="passes"/> times; returns the median pass's bytes per second.</summary>
    public static unsafe double MeasureBytesPerSecond(string? directory, bool directIo, int mib, int passes = 3)
    {
        if (mib < 1) throw new ArgumentOutOfRangeException(nameof(mib), mib, "the probe writes at least 1 MiB.");
        if (passes < 1) throw new ArgumentOutOfRangeException(nameof(passes), passes, "the probe makes at least one pass.");
        var path = Path.Combine(directory ?? Path.GetTempPath(), $"mf-swap-probe-{Guid.NewGuid():N}.swap");
        var runs = mib * 1024 / (RunPages * Page.Size / 1024);
        using var file = PrivateSwapFile.Create(path, runs * RunPages, deleteOnDispose: true, directIo);
        var buffer = (byte*)NativeMemory.AlignedAlloc(RunPages * Page.Size, Page.Size);
        try
        {
            var run = new Span<byte>(buffer, RunPages * Page.Size);
            // Non-zero, distinct bytes: a device or file system that shortcuts zeros would flatter the rate.
            for (var i = 0; i < run.Length; i += 8) BitConverter.TryWriteBytes(run[i..], (ulong)i * 0x9E3779B97F4A7C15UL + 1);
            var rates = new double[passes];
            for (var p = 0; p < passes; p++)
            {
                var sw = Stopwatch.StartNew();
                for (var r = 0; r < runs; r++) file.WriteRun(r * RunPages, RunPages, run);
                rates[p] = (double)runs * RunPages * Page.Size / sw.Elapsed.TotalSeconds;
            }
            Array.Sort(rates);
            return rates[passes / 2];
        }
        finally
        {
            NativeMemory.AlignedFree(buffer);
        }
    }
}
