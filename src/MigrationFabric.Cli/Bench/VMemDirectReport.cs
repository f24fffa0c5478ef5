namespace MigrationFabric.Cli.Bench;

using System.Globalization;
using System.Text;
using MigrationFabric.Migration.PrivateMemory.Bench;

/// <summary>Turns the runs of a vmemdirect bench into a markdown table, seed 004's ratios and an SVG plot.</summary>
public static class VMemDirectReport
{
    /// <summary>The markdown: one row per run, then the ratios the paper states, each with its target and whether it was met.</summary>
    public static string Markdown(VMemDirectBenchOptions options, IReadOnlyList<VMemDirectRun> runs, string header, VMemDirectLink? link = null)
    {
        ArgumentNullException.ThrowIfNull(runs);
        var c = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.Append(c, $"{header}\n\n");
        sb.Append(c, $"VM {options.SizeMib} MiB, destination budget {options.BudgetMib} MiB + private swap ({(options.DirectIo ? "O_DIRECT" : "page cache")}, {(options.PrewriteSwap ? "blocks written when the file is created, as a swap device's" : "fallocate's unwritten extents left to the first writes (--no-prewrite-swap)")}), pre-copy rounds at most {options.MaxRounds}{(options.AsyncPlacementWrites ? "" : ", VMemDirect's staged chunks written on the placing stream (--sync-placement-writes)")}{(options.PlacementRings ? "" : ", VMemDirect's placement writers writing with pwrite (--no-io-uring)")}.\n\n");
        if (link is not null) sb.Append(c, $"Migration link: {link.Describe()}.\n\n");
        var hotMib = options.HotReserveMib;
        sb.Append(c, $"VMemDirect's hot reserve: {(hotMib > 0 ? $"{hotMib} MiB of the budget kept for pages retransferred during migration (placed in memory, not updated in swap)" : "off")}.\n\n");
        sb.Append(c, $"Naive's device emulator: {(options.DeviceEmulatorMib > 0 ? $"{options.DeviceEmulatorMib} MiB, paged out when the VM fills the budget and in at the resume (in the downtime)" : "not modelled")}; VMemDirect's runs outside its private memory.\n\n");
        sb.Append(c, $"Data channel: {options.DataChannel} for every kind's page streams (split: the sub-host's too); the per-round table shows the most TCP connections each host served at once.\n\n");
        if (options.Preallocate)
        {
            sb.Append("Preallocated before each migration (RAM behind pages ahead of their first write; column prealloc, not in the migration time), what each kind reserves as fixed RAM by design:\n\n");
            foreach (var kind in options.Kinds) sb.Append(c, $"- {kind}: {VMemDirectBench.PreallocationOf(kind)}.\n");
            sb.Append('\n');
        }
        else sb.Append("Preallocation off (--no-prealloc): every page's RAM comes at its first write.\n\n");
        var repeated = runs.Any(r => r.Repetition > 1);
        string Workload(VMemDirectRun r) => repeated ? $"{r.Workload} #{r.Repetition}" : r.Workload;
        if (repeated)
            sb.Append(c, $"Repetitions: {runs.Max(r => r.Repetition)}, interleaved (each starts the kinds one further along); a row's workload names its repetition (#n).\n\n");
        sb.Append("| workload | kind | prealloc (ms) | migration (ms) | downtime (ms) | rounds | sent (MiB) | verified pages | membench after (GB/s) | kv ops/s before | kv ops/s last 2 s | kv recovery (s) | paging during migration | paging after |\n");
        sb.Append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n");
        foreach (var r in runs)
        {
            var prealloc = r.Preallocation is { } pa ? string.Format(c, "{0:0.0} ({1:0} MiB)", pa.TotalMilliseconds, r.PreallocatedBytes / 1048576.0) : "-";
            sb.Append(c, $"| {Workload(r)} | {r.Kind} | {prealloc} | {r.MigrationTime.TotalMilliseconds:0.0} | {r.Downtime.TotalMilliseconds:0.00} | {r.Rounds} | {r.BytesSent / 1048576.0:0} | {r.PagesVerified:N0} | ");
            sb.Append(r.MembenchAfterBytesPerSecond is { } m ? (m / 1e9).ToString("0.000", c) : "");
            sb.Append(" | ");
            if (r.Timeline.Count > 0)
            {
                sb.Append(c, $"{r.KvBaseline:0} | {KvTail(r):0} | {(r.KvRecovery is { } rec ? rec.TotalSeconds.ToString("0.0", c) : "not within the run")}");
            }
            else sb.Append(" | | ");
            sb.Append(" | ");
            if (r.DuringMigration is { } d)
            {
                sb.Append(c, $"placed mem {d.PlacedInMemory:N0} / swap {d.PlacedInSwap:N0}, updated mem {d.UpdatedInMemory:N0} / swap {d.UpdatedInSwap:N0}, in {d.PageIns:N0}, out {d.PageOuts:N0}; ");
                sb.Append(c, $"placing took {d.PlaceTime.TotalSeconds:0.00} s over the streams, of which swap writes {d.PlacementWriteIo.TotalSeconds:0.00} s ({d.PlacementWrites:N0} pages at {Rate(d.PlacementWrites * 4096, d.PlacementWriteIo)}, {d.PlacementRingWrites:N0} of them through io_uring); staged chunks a stream wrote itself, no buffer free: {d.StreamStageFlushes:N0}");
            }
            sb.Append(" | ");
            if (r.After is { } a)
            {
                sb.Append(c, $"faults {a.Faults:N0} ({a.FaultTime.TotalSeconds:0.00} s in them), in {a.PageIns:N0} (sync {a.PageInsSync:N0}) at {Rate(a.PageInBytes, a.PageInIo)}, ");
                sb.Append(c, $"out {a.PageOuts:N0} (sync {a.PageOutsSync:N0}) at {Rate(a.PageOutBytes, a.PageOutIo)}");
            }
            else if (r.RemotePagesAfter is { } rp) sb.Append(c, $"remote in {rp.In:N0}, out {rp.Out:N0}");
            sb.Append(" |\n");
        }
        AppendRounds(sb, runs, Workload);
        var ratios = Ratios(runs);
        if (ratios.Count > 0)
        {
            sb.Append(repeated
                ? "\nSeed 004's shape (each repetition's ratios within it; measured and met are their median's, then each repetition's figure and how many met the target):\n\n"
                : "\nSeed 004's shape (ratios within this run):\n\n");
            sb.Append("| comparison | measured | paper | met |\n|---|---|---|---|\n");
            foreach (var (what, measured, paper, met, metIn, of) in ratios)
                sb.Append(c, $"| {what} | {measured} | {paper} | {(met ? "yes" : "no")}{(of > 1 ? $" ({metIn} of {of})" : "")} |\n");
        }
        return sb.ToString();
    }

    /// <summary>The paper's comparisons that this set of runs can make: what, measured, the paper's figure, met, and in how many of how many repetitions it was met.</summary>
    /// <remarks>
    /// Each repetition's comparisons are made within it (its kinds ran back to back); with more than one, the verdict is on the
    /// median of each repetition's figure and the measured column lists them all, so one run slowed by a neighbour neither hides nor decides.
    /// </remarks>
    public static IReadOnlyList<(string What, string Measured, string Paper, bool Met, int MetIn, int Of)> Ratios(IReadOnlyList<VMemDirectRun> runs)
    {
        ArgumentNullException.ThrowIfNull(runs);
        var each = runs.Select(r => r.Repetition).Distinct().Order().Select(rep => Compare(runs.Where(r => r.Repetition == rep).ToList())).ToList();
        var list = new List<(string, string, string, bool, int, int)>();
        if (each.Count == 0) return list;
        foreach (var first in each[0])
        {
            var same = each.Select(e => e.FirstOrDefault(x => x.What == first.What)).OfType<Comparison>().ToList();
            var metIn = same.Count(x => x.IsMet(x.Value, x.Other));
            // The median of one figure is that figure; only several get their list.
            var value = Median(same.Select(x => x.Value).ToList());
            var other = Median(same.Select(x => x.Other).ToList());
            var measured = first.Format(value, other)
                + (same.Count > 1 ? $" (median of {same.Count}: {string.Join("; ", same.Select(x => x.Format(x.Value, x.Other)))})" : "");
            list.Add((first.What, measured, first.Paper, first.IsMet(value, other), metIn, same.Count));
        }
        return list;
    }

    // One comparison within one repetition: Value (and Other, for downtimes side by side) is what the median is taken of.
    private sealed record Comparison(string What, string Paper, double Value, double Other, Func<double, double, string> Format, Func<double, double, bool> IsMet);

    private static List<Comparison> Compare(IReadOnlyList<VMemDirectRun> runs)
    {
        var list = new List<Comparison>();
        VMemDirectRun? Find(string workload, string kind) => runs.FirstOrDefault(r => r.Workload == workload && r.Kind == kind);
        static string Times(double x, double _) => x.ToString("0.00x", CultureInfo.InvariantCulture);
        static string Faster(double x, double _) => Relative(x);
        foreach (var workload in new[] { "idle", "active" })
        {
            var v = Find(workload, "vmem-direct");
            if (v is null) continue;
            var vt = v.MigrationTime.TotalMilliseconds;
            var active = workload == "active";
            if (Find(workload, "naive") is { } n)
            {
                list.Add(new($"{workload}: VMemDirect migration time vs naive", active ? ">= 58% faster" : "faster", 1 - vt / n.MigrationTime.TotalMilliseconds, 0, Faster,
                    active ? static (x, _) => x >= 0.58 : static (x, _) => x > 0));
                list.Add(new($"{workload}: downtime VMemDirect vs naive", "well below naive (~500 ms less)", v.Downtime.TotalMilliseconds, n.Downtime.TotalMilliseconds,
                    static (x, o) => string.Format(CultureInfo.InvariantCulture, "{0:0.0} vs {1:0.0} ms", x, o), static (x, o) => x < o));
                if (v.MembenchAfterBytesPerSecond is { } vm && n.MembenchAfterBytesPerSecond is { } nm && nm > 0)
                    list.Add(new($"{workload}: membench after, VMemDirect / naive", ">= 3.2x", vm / nm, 0, Times, static (x, _) => x >= 3.2));
            }
            if (Find(workload, "split") is { } s)
            {
                list.Add(new($"{workload}: VMemDirect migration time vs split", "faster (11%)", 1 - vt / s.MigrationTime.TotalMilliseconds, 0, Faster, static (x, _) => x > 0));
                if (v.MembenchAfterBytesPerSecond is { } vm && s.MembenchAfterBytesPerSecond is { } sm && sm > 0)
                    list.Add(new($"{workload}: membench after, VMemDirect / split", ">= 2x", vm / sm, 0, Times, static (x, _) => x >= 2));
            }
            if (Find(workload, "ideal") is { } i)
            {
                // Faster than ideal by more than the 4% is noise (the same source, a destination that cannot be faster): not "met".
                list.Add(new($"{workload}: VMemDirect migration time vs ideal", "within 4%", 1 - vt / i.MigrationTime.TotalMilliseconds, 0, Faster,
                    static (x, _) => Math.Abs(x) <= 0.04));
            }
        }
        return list;
    }

    private static double Median(List<double> values)
    {
        values.Sort();
        var m = values.Count / 2;
        return values.Count % 2 == 1 ? values[m] : (values[m - 1] + values[m]) / 2;
    }

    /// <summary>One run per workload and kind, in first-run order: with repetitions, the one whose migration time is the median (the lower of the middle two).</summary>
    public static IReadOnlyList<VMemDirectRun> Representative(IReadOnlyList<VMemDirectRun> runs)
    {
        ArgumentNullException.ThrowIfNull(runs);
        return runs.GroupBy(r => (r.Workload, r.Kind))
            .Select(g =>
            {
                var sorted = g.OrderBy(r => r.MigrationTime).ToList();
                return sorted[(sorted.Count - 1) / 2];
            })
            .ToList();
    }

    /// <summary>The plot: the key-value store's ops/s over time (x = seconds since the migration started), then bars of migration time, downtime and the memory benchmark after migration.</summary>
    /// <exception cref="ArgumentException">No run has anything to plot.</exception>
    public static string Svg(VMemDirectBenchOptions options, IReadOnlyList<VMemDirectRun> runs)
    {
        ArgumentNullException.ThrowIfNull(runs);
        var repetitions = runs.Select(r => r.Repetition).Distinct().Count();
        runs = Representative(runs);
        var chart = new SvgChart($"VMemDirect (seed 004) scaled: {options.SizeMib} MiB VM, {options.BudgetMib} MiB budget"
            + (repetitions > 1 ? $"; each kind's median-time run of {repetitions}" : ""));
        var kv = runs.Where(r => r.Timeline.Count > 0).ToList();
        if (kv.Count > 0)
        {
            var series = kv.Select(r => new SvgSeries(r.Kind,
                r.Timeline.Select(s => ((s.Elapsed - r.MigrationStart).TotalSeconds, s.PerSecond)).ToList())).ToList();
            var markers = kv.Select(r => ((r.Resumed - r.MigrationStart).TotalSeconds, $"{r.Kind} resumed")).ToList();
            markers.Insert(0, (0.0, "migration starts"));
            chart.Lines("key-value store: ops/s over time", "seconds since the migration started", "ops/s", series, markers);
        }
        var kinds = runs.Select(r => r.Kind).Distinct().ToList();
        var workloads = runs.Select(r => r.Workload).Distinct().ToList();
        double Value(string workload, string kind, Func<VMemDirectRun, double?> pick) =>
            runs.FirstOrDefault(r => r.Workload == workload && r.Kind == kind) is { } r && pick(r) is { } v ? v : double.NaN;
        chart.Bars("migration time", "seconds", kinds, workloads.Select(w => new SvgBarGroup(w, kinds.Select(k => Value(w, k, r => r.MigrationTime.TotalSeconds)).ToList())).ToList(), "0.0");
        chart.Bars("downtime", "ms", kinds, workloads.Select(w => new SvgBarGroup(w, kinds.Select(k => Value(w, k, r => r.Downtime.TotalMilliseconds)).ToList())).ToList(), "0");
        var measured = workloads.Where(w => runs.Any(r => r.Workload == w && r.MembenchAfterBytesPerSecond is not null)).ToList();
        if (measured.Count > 0)
            chart.Bars("memory benchmark after migration", "GB/s", kinds, measured.Select(w => new SvgBarGroup(w, kinds.Select(k => Value(w, k, r => r.MembenchAfterBytesPerSecond / 1e9)).ToList())).ToList(), "0.00");
        return chart.Render();
    }

    // Per round: time, pages and the rate on the wire, so a cap that binds (or a round that a destination slowed) shows.
    private static void AppendRounds(StringBuilder sb, IReadOnlyList<VMemDirectRun> runs, Func<VMemDirectRun, string> workload)
    {
        var c = CultureInfo.InvariantCulture;
        if (!runs.Any(r => r.RoundDetails is { Count: > 0 })) return;
        sb.Append("\nPer round (the last is the stop-and-copy): ms / pages / MB/s on the wire");
        sb.Append(runs.Any(r => r.EmulatorPageIn is not null) ? "; naive's emulator page-in at the resume is part of its downtime" : "");
        sb.Append(runs.Any(r => r.CpuToResume is not null)
            ? ". CPU: user + system time of this process from the migration's start to the resume, the guest's vCPU threads apart from the rest (the source, the destination and the link share one process and the machine's cores); in parentheses, the part of the fabric's that the destination's swap writer threads took.\n\n"
            : ".\n\n");
        sb.Append("| workload | kind | channel | rounds | emulator page-in (ms) | CPU to the resume: fabric (swap writers) / guest vCPUs (s) |\n|---|---|---|---|---:|---:|\n");
        foreach (var r in runs)
        {
            if (r.RoundDetails is not { Count: > 0 } rounds) continue;
            var tcp = r.Kind == "split" ? $"{r.TcpChannelsAtDestination} + sub-host {r.TcpChannelsAtSubHost}" : $"{r.TcpChannelsAtDestination}";
            sb.Append(c, $"| {workload(r)} | {r.Kind} | {r.DataChannel} ({tcp} TCP) | ");
            for (var i = 0; i < rounds.Count; i++)
            {
                var x = rounds[i];
                var mbps = x.Duration > TimeSpan.Zero ? x.Pages * 4096.0 / x.Duration.TotalSeconds / 1e6 : 0;
                sb.Append(c, $"{(i > 0 ? "; " : "")}{x.Round}: {x.Duration.TotalMilliseconds:0} / {x.Pages:N0} / {mbps:0}");
            }
            sb.Append(c, $" | {(r.EmulatorPageIn is { } e ? e.TotalMilliseconds.ToString("0.0", c) : "")} | {(r.CpuToResume is { } cpu ? $"{cpu.Fabric.TotalSeconds:0.00} ({cpu.SwapWriters.TotalSeconds:0.00}) / {cpu.Vcpus.TotalSeconds:0.00}" : "")} |\n");
        }
    }

    private static string Relative(double faster) =>
        faster >= 0 ? (faster * 100).ToString("0.0", CultureInfo.InvariantCulture) + "% faster" : (-faster * 100).ToString("0.0", CultureInfo.InvariantCulture) + "% slower";

    // Bytes over the time spent in the I/O calls: the rate the swap device (or page cache) gave.
    private static string Rate(long bytes, TimeSpan io) =>
        io > TimeSpan.Zero ? (bytes / io.TotalSeconds / 1e6).ToString("0", CultureInfo.InvariantCulture) + " MB/s" : "-";

    private static double KvTail(VMemDirectRun r)
    {
        if (r.Timeline.Count == 0) return 0;
        var end = r.Timeline[^1].Elapsed;
        double sum = 0;
        var n = 0;
        foreach (var s in r.Timeline)
        {
            if (s.Elapsed >= end - TimeSpan.FromSeconds(2) && s.Elapsed > r.Resumed) { sum += s.PerSecond; n++; }
        }
        return n == 0 ? 0 : sum / n;
    }
}
