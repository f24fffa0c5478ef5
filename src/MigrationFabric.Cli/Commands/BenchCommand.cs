namespace MigrationFabric.Cli.Commands;

using System.CommandLine;
using System.Globalization;
using MigrationFabric.Cli.Bench;
using MigrationFabric.Migration.PrivateMemory.Bench;
using Spectre.Console;

/// <summary>mf bench: the seed papers' experiments on this machine (loopback host data planes), with tables and plots.</summary>
public static class BenchCommand
{
    /// <summary>The command (mf bench vmemdirect ...).</summary>
    public static Command Create(MfApp app)
    {
        var cmd = new Command("bench", "Run a seed paper's experiment on this machine and write its table and plot.");
        cmd.Subcommands.Add(VMemDirect(app));
        return cmd;
    }

    private static Command VMemDirect(MfApp app)
    {
        var size = new Option<long>("--size-mib") { Description = "The VM's size in MiB.", DefaultValueFactory = _ => 1024 };
        var budget = new Option<long>("--budget-mib") { Description = "The destination's memory budget in MiB (below the VM's size).", DefaultValueFactory = _ => 256 };
        var output = new Option<string>("--out") { Description = "Directory for vmemdirect.md and vmemdirect.svg (created if missing).", DefaultValueFactory = _ => "vmemdirect-bench" };
        var kinds = new Option<string[]>("--kinds")
        {
            Description = "Destination kinds (naive, vmem-direct, vmem-direct-m2, split, ideal). Default: naive vmem-direct split ideal.",
            AllowMultipleArgumentsPerToken = true,
        };
        var workloads = new Option<string[]>("--workloads")
        {
            Description = "Workloads (idle, active, kv). Default: all three.",
            AllowMultipleArgumentsPerToken = true,
        };
        var measure = new Option<double>("--measure-seconds") { Description = "Memory benchmark after migration, seconds.", DefaultValueFactory = _ => 3 };
        var kvAfter = new Option<double>("--kv-after-seconds") { Description = "Key-value store at the destination after the resume, seconds.", DefaultValueFactory = _ => 10 };
        var swapDir = new Option<string?>("--swap-dir") { Description = "Directory of the private swap files (default: the temp directory)." };
        var directIo = new Option<bool>("--direct-io") { Description = "Swap I/O bypasses the page cache (O_DIRECT), as Linux swap and the paper's NVMe swap do." };
        var link = new Option<double?>("--link-mbps")
        {
            Description = "Cap of the migration link in Mbit/s for every kind (0: uncapped). Default: the paper's network:swap-write ratio (10 GbE : 970 PRO 2700 MB/s) times this machine's measured swap write rate.",
        };
        var emulator = new Option<long>("--emulator-mib") { Description = "Naive only: the destination's device emulator memory, paged out while the VM arrives and in at the resume (0: not modelled).", DefaultValueFactory = _ => 32 };
        var syncWrites = new Option<bool>("--sync-placement-writes") { Description = "VMemDirect writes each completed staged chunk on the stream that placed its last page (the old behaviour), not on the pager's writer thread." };
        var hot = new Option<long>("--hot-reserve-mib") { Description = "VMemDirect: MiB of the budget kept for pages retransferred during migration, placed in memory instead of updated in swap (0: off).", DefaultValueFactory = _ => 0 };
        var channel = new Option<string>("--data-channel") { Description = "What carries every kind's page streams (split: the sub-host's too): tcp (data channels, as between host agents) or grpc (PageStream calls).", DefaultValueFactory = _ => "tcp" };
        var noPrealloc = new Option<bool>("--no-prealloc") { Description = "Do not preallocate each kind's fixed RAM before its migration (every page's RAM comes at its first write)." };
        var noPrewrite = new Option<bool>("--no-prewrite-swap") { Description = "Leave naive's and VMemDirect's swap files as fallocate makes them (unwritten extents, converted by the first writes) instead of writing their blocks when they are created, as a swap device's are." };
        var noRing = new Option<bool>("--no-io-uring") { Description = "VMemDirect's placement writers write with pwrite instead of an io_uring with the staging buffers registered." };
        var repeat = new Option<int>("--repeat")
        {
            Description = $"Run every workload with every kind this many times (1..{VMemDirectBenchOptions.MaxRepeat}), interleaved; the ratios' verdicts are on the median of each repetition's.",
            DefaultValueFactory = _ => 1,
        };
        var cmd = new Command("vmemdirect", "Seed 004: a VM larger than the destination's budget migrated by naive swap, VMemDirect, split (main + 1 sub-host) and ideal; idle, active and key-value.")
        {
            size, budget, output, kinds, workloads, measure, kvAfter, swapDir, directIo, link, emulator, syncWrites, hot, channel, noPrealloc, noPrewrite, noRing, repeat,
        };
        cmd.SetAction((r, ct) => app.Guard(async () =>
        {
            var options = Parse(r.GetValue(size), r.GetValue(budget), r.GetValue(kinds), r.GetValue(workloads), r.GetValue(measure), r.GetValue(kvAfter), r.GetValue(swapDir), r.GetValue(directIo), r.GetValue(link), r.GetValue(emulator));
            options.AsyncPlacementWrites = !r.GetValue(syncWrites);
            options.HotReserveMib = r.GetValue(hot);
            options.DataChannel = ParseDataChannel(r.GetValue(channel));
            options.Preallocate = !r.GetValue(noPrealloc);
            options.PrewriteSwap = !r.GetValue(noPrewrite);
            options.PlacementRings = !r.GetValue(noRing);
            options.Repeat = r.GetValue(repeat);
            try { options.Validate(); }
            catch (ArgumentException e) { throw new UsageException(e.Message); }
            var outDir = r.GetValue(output)!;
            return await RunVMemDirectAsync(app, options, outDir, ct);
        }));
        return cmd;
    }

    /// <summary>Builds the bench's options from the command line; a wrong value is a <see cref="UsageException"/> naming the flag.</summary>
    public static VMemDirectBenchOptions Parse(long sizeMib, long budgetMib, string[]? kinds, string[]? workloads, double measureSeconds, double kvAfterSeconds, string? swapDir, bool directIo, double? linkMbps = null, long emulatorMib = 32)
    {
        if (!double.IsFinite(measureSeconds) || measureSeconds <= 0) throw new UsageException($"--measure-seconds must be a positive number, was {measureSeconds.ToString(CultureInfo.InvariantCulture)}.");
        if (!double.IsFinite(kvAfterSeconds) || kvAfterSeconds <= 0) throw new UsageException($"--kv-after-seconds must be a positive number, was {kvAfterSeconds.ToString(CultureInfo.InvariantCulture)}.");
        var options = new VMemDirectBenchOptions
        {
            SizeMib = sizeMib, BudgetMib = budgetMib, MeasureAfter = TimeSpan.FromSeconds(measureSeconds), KvAfter = TimeSpan.FromSeconds(kvAfterSeconds),
            SwapDirectory = swapDir, DirectIo = directIo, LinkMbps = linkMbps, DeviceEmulatorMib = emulatorMib,
        };
        if (kinds is { Length: > 0 }) options.Kinds = Split(kinds);
        if (workloads is { Length: > 0 }) options.Workloads = Split(workloads);
        try
        {
            options.Validate();
        }
        catch (ArgumentException e)
        {
            throw new UsageException(e.Message);
        }
        return options;
    }

    /// <summary>--data-channel's value: tcp or grpc (any case); anything else is a <see cref="UsageException"/> naming the flag.</summary>
    public static MigrationFabric.Migration.DataPlane.DataChannel ParseDataChannel(string? value) => value?.ToLowerInvariant() switch
    {
        null or "tcp" => MigrationFabric.Migration.DataPlane.DataChannel.Tcp,
        "grpc" => MigrationFabric.Migration.DataPlane.DataChannel.Grpc,
        _ => throw new UsageException($"--data-channel must be tcp or grpc, was '{value}'."),
    };

    // "--kinds naive,ideal" and "--kinds naive ideal" both work.
    private static List<string> Split(string[] values) =>
        values.SelectMany(v => v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).Distinct().ToList();

    private static async Task<int> RunVMemDirectAsync(MfApp app, VMemDirectBenchOptions options, string outDir, CancellationToken cancellationToken)
    {
        try
        {
            Directory.CreateDirectory(outDir);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            throw new UsageException($"--out '{outDir}' cannot be created: {e.Message}");
        }
        var started = DateTime.UtcNow;
        var load = File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : "unknown";
        var header = $"mf bench vmemdirect, {started:yyyy-MM-dd HH:mm:ss} UTC, {Environment.ProcessorCount} cores, load average at start {load}";
        app.Error.WriteLine(header);
        var progress = new ThrottledProgress(app.Error);
        var bench = new VMemDirectBench(options);
        var runs = await bench.RunAsync(progress, cancellationToken);
        var loadEnd = File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : "unknown";
        var markdown = VMemDirectReport.Markdown(options, runs, $"{header}; at the end {loadEnd}; took {(DateTime.UtcNow - started).TotalSeconds:0} s", bench.Link);
        var md = Path.Combine(outDir, "vmemdirect.md");
        var svg = Path.Combine(outDir, "vmemdirect.svg");
        await File.WriteAllTextAsync(md, markdown + "\n![plot](vmemdirect.svg)\n", cancellationToken);
        await File.WriteAllTextAsync(svg, VMemDirectReport.Svg(options, runs), cancellationToken);
        app.Output.Profile.Out.Writer.Write(markdown);
        app.Output.WriteLine($"wrote {md} and {svg}");
        return runs.Any(r => r.KvCorruptReads > 0) ? 1 : 0;
    }

    /// <summary>Progress lines on the error console: every phase change, and migration updates at most twice a second.</summary>
    private sealed class ThrottledProgress(IAnsiConsole console) : IProgress<string>
    {
        private readonly Lock _lock = new();
        private string _lastPhase = "";
        private long _last;

        public void Report(string value)
        {
            lock (_lock)
            {
                var phase = value.Contains(": migrating:", StringComparison.Ordinal) ? value[..value.IndexOf(": migrating:", StringComparison.Ordinal)] + "migrating" : value;
                var now = Environment.TickCount64;
                if (phase == _lastPhase && now - _last < 500) return;
                _lastPhase = phase;
                _last = now;
                console.Profile.Out.Writer.WriteLine($"{DateTime.UtcNow:HH:mm:ss} {value}");
            }
        }
    }
}
