using System.Globalization;

namespace MigrationFabric.Rpc.Bench;

/// <summary>Raw TCP versus bare HTTP/2 (Kestrel + SocketsHttpHandler) under several settings: how much of the gap is the HTTP/2 stack itself.</summary>
internal static class H2Bench
{
    public static async Task RunAsync(BenchArgs args, CancellationToken ct)
    {
        H2Settings[] settings =
        [
            new(16 * 1024, 16 * 1024 * 1024, false),
            new(1024 * 1024, 16 * 1024 * 1024, false),
            new((16 * 1024 * 1024) - 1, 16 * 1024 * 1024, false),
            new((16 * 1024 * 1024) - 1, 16 * 1024 * 1024, true),
        ];
        foreach (var s in settings)
        {
            await using var h2 = await H2Baseline.StartAsync(s);
            await h2.MoveAsync(256L * 1024 * 1024, args.MessageBytes, 1, ct);
            foreach (var streams in args.Streams)
            {
                var raw = new List<RunCost>();
                var http = new List<RunCost>();
                for (var r = 0; r < args.Reps; r++)
                {
                    raw.Add(await RunCost.MeasureAsync(() => RawTcp.MoveAsync(args.TotalBytes, args.MessageBytes, streams, ct)));
                    http.Add(await RunCost.MeasureAsync(() => h2.MoveAsync(args.TotalBytes, args.MessageBytes, streams, ct)));
                }

                var rawGbps = raw.Select(c => args.TotalBytes / c.Seconds / 1e9).ToList();
                var httpGbps = http.Select(c => args.TotalBytes / c.Seconds / 1e9).ToList();
                var rawCpu = Stats.Median(raw.Select(c => c.CpuSeconds / (args.TotalBytes / 1e9)).ToList());
                var httpCpu = Stats.Median(http.Select(c => c.CpuSeconds / (args.TotalBytes / 1e9)).ToList());
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"h2 {s} streams={streams}: raw TCP GB/s [{Stats.Join(rawGbps, "F2")}] median {Stats.Median(rawGbps):F2}, CPU s/GB {rawCpu:F2}; HTTP/2 GB/s [{Stats.Join(httpGbps, "F2")}] median {Stats.Median(httpGbps):F2}, CPU s/GB {httpCpu:F2}; ratio {Stats.Median(httpGbps) / Stats.Median(rawGbps):F2}"));
            }
        }
    }
}
