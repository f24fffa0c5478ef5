using System.Globalization;
using MigrationFabric.Rpc.Bench;

// Loopback benchmarks of the Rpc layer (see bench/RESULTS.md, "## Rpc"):
//   throughput [--total-mib N] [--message-kib N] [--streams 1,4] [--reps N] [--ack-every N] [--with-h2]
//   latency    [--calls N] [--warmup N]
//   h2         [--total-mib N] [--reps N] [--streams 1,4]   (HTTP/2 stack without the Rpc layer, several settings)
//   codec      [--total-mib N] [--reps N]   (protobuf serialize/parse of the same batches, no transport)
var mode = args.Length > 0 && !args[0].StartsWith("--", StringComparison.Ordinal) ? args[0] : "all";
var options = BenchArgs.Parse(args.SkipWhile(a => !a.StartsWith("--", StringComparison.Ordinal)).ToArray());
using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(30));
var ct = cts.Token;

Console.WriteLine($"machine: {Environment.ProcessorCount} cpus, {MachineInfo.CpuModel()}, {System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription}");
switch (mode)
{
    case "throughput":
        await ThroughputBench.RunAsync(options, ct);
        break;
    case "latency":
        await LatencyBench.RunAsync(options, ct);
        break;
    case "h2":
        await H2Bench.RunAsync(options, ct);
        break;
    case "codec":
        await CodecBench.RunAsync(options, ct);
        break;
    case "all":
        await ThroughputBench.RunAsync(options, ct);
        await LatencyBench.RunAsync(options, ct);
        break;
    default:
        Console.Error.WriteLine($"unknown mode '{mode}': use throughput, latency, h2, codec or all");
        return 2;
}

return 0;

/// <summary>Command-line knobs shared by the modes.</summary>
internal sealed record BenchArgs(long TotalBytes, int MessageBytes, int[] Streams, int Reps, int Calls, int Warmup, int AckEvery, bool WithH2)
{
    public static BenchArgs Parse(string[] args)
    {
        long totalMiB = 2048;
        var messageKiB = 1024;
        int[] streams = [1, 4];
        var reps = 5;
        var calls = 20000;
        var warmup = 2000;
        var ackEvery = 1;
        var withH2 = false;
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] == "--with-h2")
            {
                withH2 = true;
                continue;
            }

            var value = i + 1 < args.Length ? args[i + 1] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--total-mib": totalMiB = long.Parse(value, CultureInfo.InvariantCulture); break;
                case "--message-kib": messageKiB = int.Parse(value, CultureInfo.InvariantCulture); break;
                case "--streams": streams = value.Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray(); break;
                case "--reps": reps = int.Parse(value, CultureInfo.InvariantCulture); break;
                case "--calls": calls = int.Parse(value, CultureInfo.InvariantCulture); break;
                case "--warmup": warmup = int.Parse(value, CultureInfo.InvariantCulture); break;
                case "--ack-every": ackEvery = int.Parse(value, CultureInfo.InvariantCulture); break;
                default: throw new ArgumentException($"unknown option {args[i]}");
            }

            i++;
        }

        if (totalMiB <= 0 || messageKiB < 4 || reps <= 0 || calls <= 0 || warmup < 0 || ackEvery <= 0 || streams.Any(s => s <= 0))
        {
            throw new ArgumentException("--total-mib, --message-kib (>= 4), --reps, --calls, --ack-every and --streams must be positive; --warmup not negative");
        }

        return new BenchArgs(totalMiB * 1024 * 1024, messageKiB * 1024, streams, reps, calls, warmup, ackEvery, withH2);
    }
}

/// <summary>What the machine is, for the results file.</summary>
internal static class MachineInfo
{
    public static string CpuModel()
    {
        try
        {
            var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            return line is null ? "unknown cpu" : line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();
        }
        catch (IOException)
        {
            return "unknown cpu";
        }
    }
}
