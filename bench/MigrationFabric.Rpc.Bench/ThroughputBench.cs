using System.Globalization;
using MigrationFabric.Rpc.Client;
using MigrationFabric.Rpc.Server;

namespace MigrationFabric.Rpc.Bench;

/// <summary>PageStream throughput against raw TCP moving the same bytes, alternating within each repetition.</summary>
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
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"throughput: {batches} PageBatch messages of {frameBytes} wire bytes ({args.MessageBytes / 4096} pages of 4 KiB + numbers, flags, checksums, 5-byte frame header) per run, acknowledged every {args.AckEvery}; raw TCP moves the same {(long)batches * frameBytes} bytes in {frameBytes}-byte writes"));

        // Warm-up: JIT, connection, pools.
        await bench.MoveAsync(batch, Math.Min(batches, 256), 1, ct);
        await RawTcp.MoveAsync(256L * frameBytes, frameBytes, 1, ct);

        foreach (var streams in args.Streams)
        {
            var perStream = batches / streams;
            var bytes = (long)perStream * streams * frameBytes;
            var raw = new List<double>();
            var rpc = new List<double>();
            for (var r = 0; r < args.Reps; r++)
            {
                raw.Add(bytes / await RawTcp.MoveAsync(bytes, frameBytes, streams, ct) / 1e9);
                rpc.Add(bytes / await bench.MoveAsync(batch, perStream, streams, ct) / 1e9);
            }

            var ratio = Stats.Median(rpc) / Stats.Median(raw);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"streams={streams}: raw TCP GB/s [{Stats.Join(raw, "F2")}] median {Stats.Median(raw):F2} | Rpc PageStream GB/s [{Stats.Join(rpc, "F2")}] median {Stats.Median(rpc):F2} | ratio {ratio:F2}"));
        }
    }
}
