using System.Diagnostics;
using MigrationFabric.Memory.Balancing;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Workloads;

namespace MigrationFabric.Memory.Bench;

/// <summary>The VMMB demand monitor's overhead on the key-value workload: ops/s with and without sampling, alternated in one run.</summary>
public sealed class DemandOverheadBenchmark : IMemoryBenchmark
{
    public string Name => "demand-overhead";
    public string Description => "demand estimator overhead on the key-value workload (ops/s with vs without access-bit sampling, same run; goal < 1%)";

    public async Task RunAsync(string[] args, CancellationToken cancellationToken)
    {
        var pairs = args.Length > 0 ? int.Parse(args[0]) : 10;
        var phase = TimeSpan.FromSeconds(args.Length > 1 ? double.Parse(args[1]) : 1.5);
        const long size = 256L << 20;
        var options = new DemandMonitorOptions();
        var kvOptions = new KeyValueStoreOptions { Keys = 200_000, ValueBytes = 256, GetFraction = 0.9, Vcpus = 1 };
        using var memory = new GuestMemory(size);
        using var mmu = new SoftwareMmu(memory);
        var kv = new KeyValueStoreWorkload(kvOptions);
        using var stop = new CancellationTokenSource();
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(stop.Token, cancellationToken);
        var run = kv.RunAsync(mmu, linked.Token);
        await using var monitor = new DemandMonitor(memory.Accessed, options);

        // Warm up: preload and JIT, and the monitor sees the table once.
        var warm = Stopwatch.StartNew();
        while (warm.Elapsed < TimeSpan.FromSeconds(2))
        {
            monitor.SampleOnce();
            await Task.Delay(options.SamplingInterval, cancellationToken);
        }

        Console.WriteLine($"guest memory {size >> 20} MiB; kv: {kvOptions.Keys} keys x {kvOptions.ValueBytes} B, {kvOptions.GetFraction:P0} GET, 1 vCPU, {kv.ShardPages} pages in use");
        Console.WriteLine($"monitor: {monitor.SampledPages} sampled pages (1 in {monitor.PagesPerSample:F0}), epoch {options.SamplingInterval.TotalMilliseconds} ms; {pairs} pairs of {phase.TotalSeconds} s phases, order alternating (off/on, on/off, ...)");
        Console.WriteLine($"{"pair",4} {"off ops/s",12} {"on ops/s",12} {"on/off",8}");
        var ratios = new List<double>();
        double offSum = 0, onSum = 0;
        var samplingBefore = monitor.SamplingTime;
        var epochsBefore = monitor.Epochs;
        var onWall = TimeSpan.Zero;
        for (var i = 0; i < pairs; i++)
        {
            double off, on;
            if (i % 2 == 0)
            {
                off = await MeasureAsync(kv, monitor, sample: false, phase, options.SamplingInterval, cancellationToken);
                var t = Stopwatch.StartNew();
                on = await MeasureAsync(kv, monitor, sample: true, phase, options.SamplingInterval, cancellationToken);
                onWall += t.Elapsed;
            }
            else
            {
                var t = Stopwatch.StartNew();
                on = await MeasureAsync(kv, monitor, sample: true, phase, options.SamplingInterval, cancellationToken);
                onWall += t.Elapsed;
                off = await MeasureAsync(kv, monitor, sample: false, phase, options.SamplingInterval, cancellationToken);
            }
            ratios.Add(on / off);
            offSum += off;
            onSum += on;
            Console.WriteLine($"{i,4} {off,12:F0} {on,12:F0} {on / off,8:F4}");
        }
        await stop.CancelAsync();
        await run;
        ratios.Sort();
        var median = ratios[ratios.Count / 2];
        var sampling = monitor.SamplingTime - samplingBefore;
        var epochs = monitor.Epochs - epochsBefore;
        Console.WriteLine($"median on/off ratio {median:F4} (overhead {(1 - median) * 100:F2}%); mean-of-means ratio {onSum / offSum:F4}; min {ratios[0]:F4} max {ratios[^1]:F4}");
        Console.WriteLine($"monitor cost while on: {sampling.TotalMilliseconds:F1} ms sampling in {onWall.TotalSeconds:F1} s = {sampling / onWall * 100:F3}% of one core; {sampling.TotalMicroseconds / Math.Max(1, epochs):F1} us per epoch over {epochs} epochs");
        Console.WriteLine($"demand estimate {monitor.EstimateDemandPages()} pages (kv touches {kv.ShardPages} pages; threshold {options.MissRatioThreshold:P0} miss ratio); corrupt GETs {kv.CorruptReads}");
    }

    private static async Task<double> MeasureAsync(KeyValueStoreWorkload kv, DemandMonitor monitor, bool sample, TimeSpan length, TimeSpan interval, CancellationToken ct)
    {
        var ops0 = kv.TotalOperations;
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < length)
        {
            if (sample) monitor.SampleOnce();
            await Task.Delay(interval, ct);
        }
        return (kv.TotalOperations - ops0) / sw.Elapsed.TotalSeconds;
    }
}
