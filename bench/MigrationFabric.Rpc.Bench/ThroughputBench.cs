using System.Globalization;
using MigrationFabric.Rpc.Client;
using MigrationFabric.Rpc.Server;

namespace MigrationFabric.Rpc.Bench;

/// <summary>PageStream throughput against raw TCP (and optionally bare HTTP/2) moving the same bytes, alternating within each repetition.</summary>
internal static class ThroughputBench
{
    public static async Task RunAsync(BenchArgs args, CancellationToken ct)
    {
        var batch = PageStreamBench.CreateBatch(args.MessageBytes);
        var frameBytes = batch.CalculateSize() + 5;
        var batches = (int)(args.TotalBytes / args.MessageBytes);
        var serverOptions = new RpcServerOptions { MaxReceiveMessageSize = 2 * frameBytes };
        var channelOptions = new RpcChannelOptions();
        await using var bench = await PageStreamBench.StartAsync(serverOptions, channelOptions, args.AckEvery);
        await using var h2 = args.WithH2
            ? await H2Baseline.StartAsync(new H2Settings(serverOptions.MaxFrameSize, serverOptions.InitialStreamWindowSize, false))
            : null;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"throughput: {batches} PageBatch messages of {frameBytes} wire bytes ({args.MessageBytes / 4096} pages of 4 KiB + numbers, flags, checksums, 5-byte frame header) per run, acknowledged every {args.AckEvery}; raw TCP{(h2 is null ? string.Empty : " and bare HTTP/2")} move the same {(long)batches * frameBytes} bytes in {frameBytes}-byte writes; {args.Reps} repetitions, alternating"));

        // Warm-up: JIT, connections, pools.
        await bench.MoveAsync(batch, Math.Min(batches, 256), 1, ct);
        await RawTcp.MoveAsync(256L * frameBytes, frameBytes, 1, ct);
        if (h2 is not null)
        {
            await h2.MoveAsync(256L * frameBytes, frameBytes, 1, ct);
        }

        foreach (var streams in args.Streams)
        {
            var perStream = batches / streams;
            var bytes = (long)perStream * streams * frameBytes;
            var raw = new List<RunCost>();
            var bare = new List<RunCost>();
            var rpc = new List<RunCost>();
            for (var r = 0; r < args.Reps; r++)
            {
                raw.Add(await RunCost.MeasureAsync(() => RawTcp.MoveAsync(bytes, frameBytes, streams, ct)));
                if (h2 is not null)
                {
                    bare.Add(await RunCost.MeasureAsync(() => h2.MoveAsync(bytes, frameBytes, streams, ct)));
                }

                rpc.Add(await RunCost.MeasureAsync(() => bench.MoveAsync(batch, perStream, streams, ct)));
            }

            var rawGbps = Stats.Median(raw.Select(c => bytes / c.Seconds / 1e9).ToList());
            var rpcGbps = Stats.Median(rpc.Select(c => bytes / c.Seconds / 1e9).ToList());
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"streams={streams}:"));
            Console.WriteLine(Describe("raw TCP", raw, bytes));
            if (h2 is not null)
            {
                Console.WriteLine(Describe("bare HTTP/2", bare, bytes));
            }

            Console.WriteLine(Describe("Rpc PageStream", rpc, bytes));
            var line = string.Create(CultureInfo.InvariantCulture, $"  ratio Rpc/raw TCP (median GB/s) {rpcGbps / rawGbps:F2}");
            if (h2 is not null)
            {
                var bareGbps = Stats.Median(bare.Select(c => bytes / c.Seconds / 1e9).ToList());
                line += string.Create(CultureInfo.InvariantCulture, $"; bare HTTP/2/raw TCP {bareGbps / rawGbps:F2}; Rpc/bare HTTP/2 {rpcGbps / bareGbps:F2}");
            }

            Console.WriteLine(line);
        }
    }

    private static string Describe(string name, List<RunCost> runs, long bytes)
    {
        var gbps = runs.Select(c => bytes / c.Seconds / 1e9).ToList();
        var cpuPerGb = runs.Select(c => c.CpuSeconds / (bytes / 1e9)).ToList();
        var allocPerGb = runs.Select(c => c.AllocatedBytes / (bytes / 1e9) / 1e6).ToList();
        return string.Create(CultureInfo.InvariantCulture,
            $"  {name,-15} GB/s [{Stats.Join(gbps, "F2")}] median {Stats.Median(gbps):F2} | CPU s per GB median {Stats.Median(cpuPerGb):F2} | allocated MB per GB median {Stats.Median(allocPerGb):F0} | GCs gen0/1/2 per run {runs.Sum(c => c.Gen0) / runs.Count}/{runs.Sum(c => c.Gen1) / runs.Count}/{runs.Sum(c => c.Gen2) / runs.Count}");
    }
}
