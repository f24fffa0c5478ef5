using MigrationFabric.Migration.PrivateMemory.Bench;

namespace MigrationFabric.Migration.Bench;

/// <summary>--vmemdirect: seed 004 scaled down, through the Migration library's <see cref="VMemDirectBench"/> (the same runner as `mf bench vmemdirect`), printed as text lines.</summary>
internal static class VMemDirectBenchRunner
{
    public static async Task RunAsync(VMemDirectBenchOptions options)
    {
        Console.WriteLine($"vmemdirect bench: VM {options.SizeMib} MiB, destination budget {options.BudgetMib} MiB + private swap ({(options.DirectIo ? "O_DIRECT" : "page cache")}), " +
            $"{Environment.ProcessorCount} cores, {DateTime.UtcNow:yyyy-MM-dd HH:mm:ss} UTC, load {File.ReadAllText("/proc/loadavg").Trim()}");
        var runs = await new VMemDirectBench(options).RunAsync(new Progress<string>(Console.Error.WriteLine), CancellationToken.None);
        foreach (var r in runs)
        {
            var paging = r.DuringMigration is { } d
                ? $", during: placed mem {d.PlacedInMemory:N0} swap {d.PlacedInSwap:N0}, updated mem {d.UpdatedInMemory:N0} swap {d.UpdatedInSwap:N0}, in {d.PageIns:N0}, out {d.PageOuts:N0}"
                : "";
            var after = r.After is { } a
                ? $", after: faults {a.Faults:N0} ({a.FaultTime.TotalSeconds:0.00} s), in {a.PageIns:N0} (sync {a.PageInsSync:N0}, {a.PageInIo.TotalSeconds:0.00} s of reads), " +
                  $"out {a.PageOuts:N0} (sync {a.PageOutsSync:N0}, {a.PageOutIo.TotalSeconds:0.00} s of writes)"
                : r.RemotePagesAfter is { } rp ? $", after: remote in {rp.In:N0} out {rp.Out:N0}" : "";
            var result = r.MembenchAfterBytesPerSecond is { } m ? $"membench after {m / 1e9:0.000} GB/s"
                : $"kv before {r.KvBaseline:0} ops/s, recovery {(r.KvRecovery is { } rec ? $"{rec.TotalSeconds:0.0} s" : "none")}, corrupt {r.KvCorruptReads}";
            Console.WriteLine($"{r.Workload,-6} {r.Kind,-14}: migration {r.MigrationTime.TotalMilliseconds,8:0.0} ms, downtime {r.Downtime.TotalMilliseconds,8:0.00} ms, " +
                $"rounds {r.Rounds}, bytes {r.BytesSent,14:N0}, verified {r.PagesVerified:N0}; {result}{paging}{after}");
        }
    }
}
