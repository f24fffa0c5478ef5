namespace MigrationFabric.Cli.Commands;

using System.CommandLine;
using Google.Protobuf.WellKnownTypes;
using MigrationFabric.Cli.Client;
using MigrationFabric.Cli.Rendering;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Host.Migrations;
using Spectre.Console;
using Migration = MigrationFabric.Contracts.V1.Migration;

/// <summary>The commands that talk to a running cluster: hosts, vm, migrate, migrations, cancel.</summary>
public static class ClientCommands
{
    /// <summary>mf hosts.</summary>
    public static Command Hosts(MfApp app)
    {
        var cmd = new Command("hosts", "List the cluster's hosts with their memory.");
        cmd.SetAction((r, ct) => app.Guard(async () =>
        {
            using var client = Connect(app, r);
            var hosts = await client.ListHostsAsync(ct);
            var table = new Table().AddColumns("host", "endpoint", "budget", "reserved", "used", "swap", "held", "VMs", "status");
            foreach (var h in hosts.Hosts)
                table.AddRow(Esc(h.Name), Esc(h.Endpoint), Units.Bytes(h.MemoryBudgetBytes), Units.Bytes(h.MemoryReservedBytes), Units.Bytes(h.MemoryUsedBytes),
                    h.SwapUsedBytes == 0 ? "-" : Units.Bytes(h.SwapUsedBytes), h.HeldBytes == 0 ? "-" : Units.Bytes(h.HeldBytes),
                    Esc(h.Vms.Count == 0 ? "-" : string.Join(", ", h.Vms)), Esc(Status(h.Status)));
            app.Output.Write(table);
            return 0;
        }));
        return cmd;
    }

    /// <summary>mf vm create|list|describe|rm.</summary>
    public static Command Vm(MfApp app)
    {
        var vm = new Command("vm", "Create, list, describe and remove emulated VMs.");

        var name = new Argument<string>("name") { Description = "The VM's name (unique in the cluster)." };
        var host = new Option<string>("--host") { Description = "The host to run it on.", Required = true };
        var memory = new Option<string>("--memory", "-m") { Description = "Memory size, e.g. 64MiB, 1GiB.", DefaultValueFactory = _ => "64MiB" };
        var workload = new Option<string>("--workload", "-w") { Description = "idle, memory-benchmark, hot-set, key-value or memory-spike.", DefaultValueFactory = _ => "idle" };
        var vcpus = new Option<uint>("--vcpus") { Description = "vCPU threads.", DefaultValueFactory = _ => 1 };
        var ws = new Option<uint>("--working-set-percent") { Description = "hot-set: working set, percent of memory (default 10)." };
        var rate = new Option<ulong>("--dirty-rate") { Description = "hot-set: dirty pages per second (0 = as fast as it can)." };
        var share = new Option<string>("--share") { Description = "Over-commit: physical memory it may hold (e.g. 16MiB); the rest lives in a private swap file on its host." };
        var reservation = new Option<string>("--reservation") { Description = "Memory it is guaranteed when a rebalance divides its host's memory (e.g. 8MiB)." };
        var weight = new Option<uint>("--weight") { Description = "Its weight when a rebalance divides memory by demand (default 1)." };
        var create = new Command("create", "Create and start a VM.") { name, host, memory, workload, vcpus, ws, rate, share, reservation, weight };
        create.SetAction((r, ct) => app.Guard(async () =>
        {
            ulong bytes = Units.ParseBytes(r.GetValue(memory)!) ?? throw new UsageException($"--memory '{r.GetValue(memory)}' is not a size (e.g. 64MiB).");
            var kind = ParseWorkload(r.GetValue(workload)!);
            ulong OptionalSize(Option<string> o) => r.GetValue(o) is { } text
                ? Units.ParseBytes(text) ?? throw new UsageException($"{o.Name} '{text}' is not a size (e.g. 16MiB).") : 0;
            using var client = Connect(app, r);
            var created = await client.CreateVmAsync(new CreateVmRequest
            {
                Name = r.GetValue(name)!, Host = r.GetValue(host)!, MemoryBytes = bytes,
                ShareBytes = OptionalSize(share), ReservationBytes = OptionalSize(reservation), Weight = r.GetValue(weight),
                Workload = new Workload { Kind = kind, Vcpus = r.GetValue(vcpus), WorkingSetPercent = r.GetValue(ws), DirtyPagesPerSecond = r.GetValue(rate) },
            }, ct);
            app.Output.MarkupLine($"created VM [bold]{Esc(created.Name)}[/] on {Esc(created.Host)} ({Units.Bytes(created.MemoryBytes)}, {Esc(WorkloadName(created.Workload.Kind))})");
            return 0;
        }));

        var onHost = new Option<string>("--host") { Description = "Only VMs on this host." };
        var list = new Command("list", "List VMs: memory, reservation, weight, resident, swapped, remote, workload, state, migration; a FAULTED VM's vCPU error is printed below the table.") { onHost };
        list.Aliases.Add("ls");
        list.SetAction((r, ct) => app.Guard(async () =>
        {
            using var client = Connect(app, r);
            var vms = await client.ListVmsAsync(r.GetValue(onHost) ?? "", ct);
            VmTable.Write(app.Output, vms.Vms);
            return 0;
        }));

        var describeName = new Argument<string>("name") { Description = "The VM to show." };
        var describe = new Command("describe", "Show one VM with the columns of vm list (a FAULTED VM's vCPU error below).") { describeName };
        describe.SetAction((r, ct) => app.Guard(async () =>
        {
            using var client = Connect(app, r);
            VmTable.Write(app.Output, [await client.DescribeVmAsync(r.GetValue(describeName)!, ct)]);
            return 0;
        }));

        var rmName = new Argument<string>("name") { Description = "The VM to remove." };
        var rm = new Command("rm", "Stop a VM and free its memory.") { rmName };
        rm.SetAction((r, ct) => app.Guard(async () =>
        {
            using var client = Connect(app, r);
            var freed = await client.DeleteVmAsync(r.GetValue(rmName)!, ct);
            app.Output.MarkupLine($"removed VM [bold]{Esc(r.GetValue(rmName)!)}[/] ({Units.Bytes(freed.FreedBytes)} freed)");
            return 0;
        }));

        vm.Subcommands.Add(create);
        vm.Subcommands.Add(list);
        vm.Subcommands.Add(describe);
        vm.Subcommands.Add(rm);
        return vm;
    }

    /// <summary>mf migrate VM --to HOST --strategy S.</summary>
    public static Command Migrate(MfApp app)
    {
        var vm = new Argument<string>("vm") { Description = "The VM to move." };
        var to = new Option<string>("--to") { Description = "The destination host (split: the main host, which runs the vCPUs; scatter-gather: the host that gathers).", Required = true };
        var strategy = new Option<string>("--strategy", "-s")
        {
            Description = "pre-copy, post-copy, hybrid; split (--to MAIN --sub HOST...), scatter-gather (--sub INTERMEDIATE...); " +
                "vmem-direct or naive-swap (--to a host with less free memory than the VM); vmem-devirtualize (a VM in private memory to a host with room).",
            DefaultValueFactory = _ => "pre-copy",
        };
        var sub = new Option<string[]>("--sub")
        {
            Description = "split: a sub-host holding part of the memory; scatter-gather: an intermediate host. Repeat for each (at most 8).",
            AllowMultipleArgumentsPerToken = false,
        };
        var pagingMethod = new Option<uint?>("--paging-method") { Description = "vmem-direct: the destination's asynchronous paging method, 1 or 2 (default 1)." };
        var downtime = new Option<uint?>("--downtime-ms") { Description = "Downtime target in ms (default 300)." };
        var downtimeLimit = new Option<uint?>("--downtime-limit-ms") { Description = "Pre-copy: fail (VM stays at the source) rather than pause longer than this many ms when it does not converge (default none)." };
        var bandwidth = new Option<string?>("--bandwidth") { Description = "Bandwidth cap, e.g. 100MiB/s (default none)." };
        var deadline = new Option<uint?>("--deadline-s") { Description = "Fail (VM stays at the source) if not switched over within this many seconds." };
        var noAuto = new Option<bool>("--no-auto-converge") { Description = "Do not throttle the vCPUs when pre-copy does not converge." };
        var watch = new Option<bool>("--watch") { Description = "Show progress until the migration ends; exit non-zero unless it completed." };
        var cmd = new Command("migrate", "Live-migrate a VM to another host (or to a main host and sub-hosts).") { vm, to, strategy, sub, downtime, downtimeLimit, bandwidth, deadline, noAuto, pagingMethod, watch };
        cmd.SetAction((r, ct) => app.Guard(async () =>
        {
            var s = StrategyCatalog.Parse(r.GetValue(strategy)!) ?? throw new UsageException(
                $"--strategy '{r.GetValue(strategy)}' is not a strategy ({string.Join(", ", StrategyCatalog.All.Select(StrategyCatalog.NameOf))}).");
            string[] subs = r.GetValue(sub) ?? [];
            if (StrategyCatalog.IsMultiHost(s) && subs.Length == 0)
                throw new UsageException($"--strategy {StrategyCatalog.NameOf(s)} needs at least one --sub HOST ({(s == Strategy.Split ? "a sub-host" : "an intermediate")}).");
            if (!StrategyCatalog.IsMultiHost(s) && subs.Length > 0)
                throw new UsageException($"--sub is only for split and scatter-gather, not {StrategyCatalog.NameOf(s)}.");
            var limits = new MigrationLimits { DisableAutoConverge = r.GetValue(noAuto) };
            if (r.GetValue(pagingMethod) is { } method)
            {
                if (s != Strategy.VmemDirect) throw new UsageException($"--paging-method is only for vmem-direct, not {StrategyCatalog.NameOf(s)}.");
                if (method is not (1 or 2)) throw new UsageException($"--paging-method must be 1 or 2, was {method}.");
                limits.VmemPagingMethod = method;
            }
            if (r.GetValue(downtime) is { } ms) limits.DowntimeTarget = Duration.FromTimeSpan(TimeSpan.FromMilliseconds(ms));
            if (r.GetValue(downtimeLimit) is { } limitMs) limits.DowntimeLimit = Duration.FromTimeSpan(TimeSpan.FromMilliseconds(limitMs));
            if (r.GetValue(deadline) is { } sec) limits.Deadline = Duration.FromTimeSpan(TimeSpan.FromSeconds(sec));
            if (r.GetValue(bandwidth) is { } bw)
                limits.BandwidthBytesPerSecond = Units.ParseBytes(bw) ?? throw new UsageException($"--bandwidth '{bw}' is not a rate (e.g. 100MiB/s).");
            using var client = Connect(app, r);
            var m = await client.StartMigrationAsync(new StartMigrationRequest { Vm = r.GetValue(vm)!, Destination = r.GetValue(to)!, Strategy = s, Limits = limits, SubHosts = { subs } }, ct);
            string via = m.Request.SubHosts.Count == 0 ? "" : $" {(s == Strategy.Split ? "+ sub-hosts" : "via")} {string.Join(", ", m.Request.SubHosts)}";
            app.Output.MarkupLine($"migration [bold]{Esc(m.Id)}[/]: {Esc(m.Request.Vm)} {Esc(m.Source)} -> {Esc(m.Request.Destination)}{Esc(via)} ({Esc(StrategyCatalog.NameOf(s))})");
            if (!r.GetValue(watch)) return 0;
            var view = new MigrationProgressView(app.Output);
            // Several receiving hosts: a bar for each beside the migration's own.
            var final = await view.RunAsync(bars =>
            {
                var overall = bars.Add($"{m.Request.Vm} -> {m.Request.Destination}");
                IMigrationBar bar = m.Request.SubHosts.Count > 0 ? new DestinationBars(bars, overall) : overall;
                return MigrationProgressView.WatchToEndAsync(client, m.Id, bar, ct);
            });
            PrintOutcome(app, final);
            return final.Phase == MigrationPhase.Completed ? 0 : 1;
        }));
        return cmd;
    }

    /// <summary>mf migrations [--vm VM].</summary>
    public static Command Migrations(MfApp app)
    {
        var vm = new Option<string>("--vm") { Description = "Only migrations of this VM." };
        var cmd = new Command("migrations", "List migrations, newest first.") { vm };
        cmd.SetAction((r, ct) => app.Guard(async () =>
        {
            using var client = Connect(app, r);
            var list = await client.ListMigrationsAsync(r.GetValue(vm) ?? "", ct);
            var table = new Table().AddColumns("id", "VM", "from", "to", "strategy", "phase", "downtime", "bytes", "error");
            foreach (var m in list.Migrations)
                table.AddRow(Esc(m.Id), Esc(m.Request.Vm), Esc(m.Source), Esc(m.Request.Destination), Esc(StrategyCatalog.NameOf(m.Request.Strategy)),
                    Esc(MigrationProgressView.Phase(m.Phase)), m.Report is { } rep ? Units.Duration(rep.Downtime.ToTimeSpan()) : "-",
                    m.Report is { } rep2 ? Units.Bytes(rep2.BytesSent) : "-", Esc(m.Error));
            app.Output.Write(table);
            return 0;
        }));
        return cmd;
    }

    /// <summary>mf cancel ID.</summary>
    public static Command Cancel(MfApp app)
    {
        var id = new Argument<string>("id") { Description = "The migration's id." };
        var cmd = new Command("cancel", "Cancel a migration (before switch-over the VM keeps running at its source).") { id };
        cmd.SetAction((r, ct) => app.Guard(async () =>
        {
            using var client = Connect(app, r);
            var m = await client.CancelMigrationAsync(r.GetValue(id)!, ct);
            app.Output.MarkupLine($"cancel requested for migration [bold]{Esc(m.Id)}[/] (phase {Esc(MigrationProgressView.Phase(m.Phase))})");
            return 0;
        }));
        return cmd;
    }

    /// <summary>Prints how a migration ended.</summary>
    public static void PrintOutcome(MfApp app, Migration m)
    {
        if (m.Phase == MigrationPhase.Completed && m.Report is { } r)
        {
            app.Output.MarkupLine($"[green]completed[/]: total {Units.Duration(r.TotalTime.ToTimeSpan())}, downtime {Units.Duration(r.Downtime.ToTimeSpan())}, " +
                $"{Units.Bytes(r.BytesSent)} sent, integrity {r.Integrity.PagesChecked} pages checked, {r.Integrity.MismatchedPages} mismatched, " +
                $"recovery {Esc(RecoveryText.Of(r))}, data channel {Esc(DataChannelText.Of(r))}" +
                (r.DestinationPreallocation is { } p ? $"; destination memory preallocated before the start in {Units.Duration(p.ToTimeSpan())}" : ""));
            if (r.PerDestination.Count > 1)
                foreach (var d in r.PerDestination)
                    app.Output.MarkupLine($"  {Esc(d.Host)}{(d.Role.Length > 0 ? $" ({Esc(d.Role)})" : "")}: {Units.Bytes(d.BytesSent)} sent");
        }
        else
            app.Error.MarkupLine($"[red]{Esc(MigrationProgressView.Phase(m.Phase))}[/]: {Esc(m.Error)}");
        if (PreCopyEndingText.Line(m.Report) is { } ending) (m.Phase == MigrationPhase.Completed ? app.Output : app.Error).MarkupLine($"  {Esc(ending)}");
    }

    internal static FabricClient Connect(MfApp app, ParseResult r)
    {
        string text = r.GetValue(app.Endpoint)!;
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || (uri.Scheme != "http" && uri.Scheme != "https"))
            throw new UsageException($"--endpoint '{text}' is not an http(s) URL such as {MfApp.DefaultEndpoint}.");
        return new FabricClient(uri);
    }

    internal static WorkloadKind ParseWorkload(string text) => text.Replace("_", "-", StringComparison.Ordinal).ToLowerInvariant() switch
    {
        "idle" => WorkloadKind.Idle,
        "memory-benchmark" or "membench" or "mem" => WorkloadKind.MemoryBenchmark,
        "hot-set" or "hotset" => WorkloadKind.HotSet,
        "key-value" or "kv" => WorkloadKind.KeyValue,
        "memory-spike" or "spike" => WorkloadKind.MemorySpike,
        _ => throw new UsageException($"--workload '{text}' is not a workload (idle, memory-benchmark, hot-set, key-value, memory-spike)."),
    };

    internal static string WorkloadName(WorkloadKind k) => WorkloadText.Name(k);

    private static string Status(HostStatus s) => s switch
    {
        HostStatus.Active => "active",
        HostStatus.Joining => "joining",
        HostStatus.ShuttingDown => "shutting down",
        HostStatus.Dead => "dead",
        _ => "?",
    };

    internal static string Esc(string s) => Markup.Escape(s);
}
