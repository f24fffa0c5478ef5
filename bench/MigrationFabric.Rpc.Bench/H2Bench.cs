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
            new(1024 * 1024, 16 * 1024 * 1024, true),
        ];
        foreach (var s in settings)
        {
            await using var h2 = await H2Baseline.StartAsync(s);
            await h2.MoveAsync(256L * 1024 * 1024, args.MessageBytes, 1, ct);
            foreach (var streams in args.Streams)
            {
                var raw = new List<double>();
                var http = new List<double>();
                for (var r = 0; r < args.Reps; r++)
                {
                    raw.Add(args.TotalBytes / await RawTcp.MoveAsync(args.TotalBytes, args.MessageBytes, streams, ct) / 1e9);
                    http.Add(args.TotalBytes / await h2.MoveAsync(args.TotalBytes, args.MessageBytes, streams, ct) / 1e9);
                }

                var ratio = Stats.Median(http) / Stats.Median(raw);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"h2 {s} streams={streams}: raw TCP GB/s [{Stats.Join(raw, "F2")}] median {Stats.Median(raw):F2}; HTTP/2 GB/s [{Stats.Join(http, "F2")}] median {Stats.Median(http):F2}; ratio {ratio:F2}"));
            }
        }
    }
}
