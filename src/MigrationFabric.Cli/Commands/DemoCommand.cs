namespace MigrationFabric.Cli.Commands;

using System.CommandLine;
using System.Diagnostics;
using MigrationFabric.Cli.Client;
using MigrationFabric.Cli.Rendering;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Host.Agent;
using MigrationFabric.Host.Migrations;
using MigrationFabric.Host.Telemetry;
using Spectre.Console;
using Migration = MigrationFabric.Contracts.V1.Migration;

/// <summary>mf demo: an embedded 3-host cluster, VMs with different workloads, each moved with each strategy, and a results table.</summary>
public static class DemoCommand
{
    /// <summary>One demo VM: its workload and size.</summary>
    public sealed record DemoWorkload(string Name, ulong MemoryBytes, Workload Workload);

    /// <summary>The workloads the demo runs unless told otherwise.</summary>
    public static IReadOnlyList<DemoWorkload> DefaultWorkloads { get; } =
    [
        new("idle", 64UL << 20, new Workload { Kind = WorkloadKind.Idle }),
        new("hot-set", 128UL << 20, new Workload { Kind = WorkloadKind.HotSet, WorkingSetPercent = 10, DirtyPagesPerSecond = 20_000 }),
        new("key-value", 64UL << 20, new Workload { Kind = WorkloadKind.KeyValue, SetPercent = 10 }),
    ];

    /// <summary>Every workload the demo knows.</summary>
    public static IReadOnlyList<DemoWorkload> AllWorkloads { get; } =
    [
        .. DefaultWorkloads,
        new("memory-benchmark", 64UL << 20, new Workload { Kind = WorkloadKind.MemoryBenchmark }),
        new("memory-spike", 128UL << 20, new Workload { Kind = WorkloadKind.MemorySpike, SpikeBytes = 16UL << 20 }),
    ];

    /// <summary>The command.</summary>
    public static Command Create(MfApp app)
    {
        var strategies = new Option<string[]>("--strategy", "-s")
        {
            Description = "Strategies to run (default: every implemented one: " + string.Join(", ", StrategyCatalog.Implemented.Select(StrategyCatalog.NameOf)) + ").",
            AllowMultipleArgumentsPerToken = true,
        };
        var workloads = new Option<string[]>("--workload", "-w")
        {
            Description = "Workloads to run (default: idle, hot-set, key-value; 'all' adds memory-benchmark and memory-spike).",
            AllowMultipleArgumentsPerToken = true,
        };
        var cmd = new Command("demo", "Start an embedded 3-host cluster, migrate VMs with every strategy, print the results; exit 1 if any failed.") { strategies, workloads };
        cmd.SetAction((r, ct) => app.Guard(() => RunAsync(app, Pick(r.GetValue(strategies)), PickWorkloads(r.GetValue(workloads)), ct)));
        return cmd;
    }

    private static IReadOnlyList<Strategy> Pick(string[]? names)
    {
        if (names is null || names.Length == 0) return StrategyCatalog.Implemented;
        return names.Select(n => StrategyCatalog.Parse(n) ?? throw new UsageException($"--strategy '{n}' is not a strategy (pre-copy, post-copy, hybrid ...).")).Distinct().ToList();
    }

    private static IReadOnlyList<DemoWorkload> PickWorkloads(string[]? names)
    {
        if (names is null || names.Length == 0) return DefaultWorkloads;
        if (names.Contains("all")) return AllWorkloads;
        return names.Select(n =>
        {
            var kind = ClientCommands.ParseWorkload(n);
            return AllWorkloads.First(w => w.Workload.Kind == kind);
        }).Distinct().ToList();
    }

    private sealed record Row(Strategy Strategy, DemoWorkload Workload, string Vm, string Destination, Migration? Final, Vm? After, string? Error);

    /// <summary>Runs the demo; 0 when every migration completed with a clean integrity check and the VM runs at its destination.</summary>
    public static async Task<int> RunAsync(MfApp app, IReadOnlyList<Strategy> strategies, IReadOnlyList<DemoWorkload> workloads, CancellationToken ct)
    {
        var console = app.Output;
        foreach (var s in strategies)
            if (!StrategyCatalog.Implemented.Contains(s))
                throw new UsageException($"strategy {StrategyCatalog.NameOf(s)} is not implemented yet; implemented: {string.Join(", ", StrategyCatalog.Implemented.Select(StrategyCatalog.NameOf))}.");
        using var telemetry = TelemetrySetup.FromEnvironment();
        ulong need = 0;
        foreach (var w in workloads) need += w.MemoryBytes;
        need *= (ulong)strategies.Count;
        long budget = (long)Math.Max(1UL << 30, (need + (1UL << 20) - 1) & ~((1UL << 20) - 1));
        console.MarkupLine($"[bold]MigrationFabric demo[/]: {strategies.Count} strateg{(strategies.Count == 1 ? "y" : "ies")} x {workloads.Count} workload(s), 3 host agents on loopback");
        var startWatch = Stopwatch.StartNew();
        await using var cluster = await EmbeddedCluster.StartAsync(new EmbeddedClusterOptions { Hosts = 3, MemoryBudgetBytes = budget }, ct);
        foreach (var a in cluster.Agents) console.MarkupLine($"  {a.HostName}  {Markup.Escape(a.Endpoint.ToString())}  budget {Units.Bytes(budget)}");
        console.MarkupLine($"cluster up in {Units.Duration(startWatch.Elapsed)}; scheduler API at {Markup.Escape(cluster.Endpoint.ToString())}");

        using var client = new FabricClient(cluster.Endpoint);
        string source = cluster.Agents[0].HostName;
        var plan = new List<(Strategy Strategy, DemoWorkload Workload, string Vm, string Destination)>();
        int n = 0;
        foreach (var s in strategies)
            foreach (var w in workloads)
            {
                string vm = $"{StrategyCatalog.NameOf(s)}-{w.Name}";
                await client.CreateVmAsync(new CreateVmRequest { Name = vm, Host = source, MemoryBytes = w.MemoryBytes, Workload = w.Workload }, ct);
                plan.Add((s, w, vm, cluster.Agents[1 + n++ % 2].HostName));
            }
        console.MarkupLine($"created {plan.Count} VMs on {source}; their workloads are running");
        // Let the workloads run a little so the report has a before-migration baseline.
        await Task.Delay(TimeSpan.FromMilliseconds(500), ct);

        var view = new MigrationProgressView(console);
        var rows = await view.RunAsync(async bars =>
        {
            var labelled = plan.Select(p => (p, bar: bars.Add($"{p.Vm,-28} {source} -> {p.Destination}"))).ToList();
            var result = new List<Row>();
            foreach (var (p, bar) in labelled)
            {
                try
                {
                    var started = await client.StartMigrationAsync(new StartMigrationRequest { Vm = p.Vm, Destination = p.Destination, Strategy = p.Strategy }, ct);
                    var final = await MigrationProgressView.WatchToEndAsync(client, started.Id, bar, ct);
                    var after = await client.DescribeVmAsync(p.Vm, ct);
                    result.Add(new Row(p.Strategy, p.Workload, p.Vm, p.Destination, final, after, null));
                }
                catch (MigrationFabric.Rpc.RpcException e)
                {
                    bar.Update(new MigrationEvent { Phase = MigrationPhase.Failed, Final = new Migration { Phase = MigrationPhase.Failed, Error = $"{e.StatusCode}: {e.Status.Detail}" } });
                    result.Add(new Row(p.Strategy, p.Workload, p.Vm, p.Destination, null, null, $"{e.StatusCode}: {e.Status.Detail}"));
                }
            }
            return result;
        });

        // Without a terminal Spectre assumes 80 columns; the results table reads better unwrapped in CI logs.
        if (!console.Profile.Capabilities.Interactive && console.Profile.Width < 132) console.Profile.Width = 132;
        var table = new Table().Title("[bold]migration results[/]")
            .AddColumns("strategy", "workload", "size", "total", "downtime", "bytes sent", "channel", "rounds", "faults", "recovery", "integrity", "now on");
        int failures = 0;
        foreach (var row in rows)
        {
            var rep = row.Final?.Report;
            bool ok = row.Final is { Phase: MigrationPhase.Completed } && rep is { Integrity: { MismatchedPages: 0, PagesChecked: > 0 } }
                && row.After is { } a && a.Host == row.Destination && a.State == VmState.Running;
            if (!ok) failures++;
            string integrity = rep?.Integrity is { } i
                ? i.MismatchedPages == 0 && i.PagesChecked > 0 ? $"[green]ok[/] {i.PagesChecked} pages" : $"[red]{i.MismatchedPages} MISMATCHED[/]"
                : "[red]none[/]";
            table.AddRow(
                Markup.Escape(StrategyCatalog.NameOf(row.Strategy)), Markup.Escape(row.Workload.Name), Units.Bytes(row.Workload.MemoryBytes),
                rep is null ? "-" : Units.Duration(rep.TotalTime.ToTimeSpan()),
                rep is null ? "-" : Units.Duration(rep.Downtime.ToTimeSpan()),
                rep is null ? "-" : Units.Bytes(rep.BytesSent),
                rep is null ? "-" : Markup.Escape(DataChannelText.Of(rep)),
                rep is null ? "-" : Markup.Escape(PreCopyEndingText.Rounds(rep)),
                rep is null ? "-" : rep.RemoteFaults.ToString(System.Globalization.CultureInfo.InvariantCulture),
                rep is null ? "-" : Markup.Escape(RecoveryText.Of(rep)),
                integrity,
                row.After is { } v ? Markup.Escape(v.Host) : "-");
        }
        console.Write(table);
        foreach (var row in rows.Where(r => r.Error is not null || r.Final is { Phase: not MigrationPhase.Completed }))
            app.Error.MarkupLine($"[red]{Markup.Escape(row.Vm)}[/]: {Markup.Escape(row.Error ?? row.Final!.Error)}");
        if (failures > 0)
        {
            app.Error.MarkupLine($"[red]demo FAILED[/]: {failures} of {rows.Count} migration(s) did not complete with a clean integrity check at their destination.");
            return 1;
        }
        console.MarkupLine($"[green]demo passed[/]: {rows.Count} migrations, every page verified at the destination.");
        return 0;
    }
}
