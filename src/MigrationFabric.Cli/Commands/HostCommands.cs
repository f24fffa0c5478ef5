namespace MigrationFabric.Cli.Commands;

using System.CommandLine;
using MigrationFabric.Cli.Rendering;
using MigrationFabric.Contracts.V1;
using Spectre.Console;

/// <summary>mf host: commands about one host (rebalance).</summary>
public static class HostCommands
{
    /// <summary>mf host rebalance HOST [--dry-run].</summary>
    public static Command Host(MfApp app)
    {
        var host = new Command("host", "Commands about one host.");
        var name = new Argument<string>("host") { Description = "The host whose memory is re-divided." };
        var dryRun = new Option<bool>("--dry-run") { Description = "Compute and print the targets without applying them." };
        var rebalance = new Command("rebalance", "Re-divide a host's memory among its VMs by demand, reservation and weight (VMMB), and print each VM's target.") { name, dryRun };
        rebalance.SetAction((r, ct) => app.Guard(async () =>
        {
            using var client = ClientCommands.Connect(app, r);
            var response = await client.RebalanceMemoryAsync(new RebalanceMemoryRequest { Host = r.GetValue(name)!, DryRun = r.GetValue(dryRun) }, ct);
            Print(app.Output, r.GetValue(name)!, r.GetValue(dryRun), response);
            return 0;
        }));
        host.Subcommands.Add(rebalance);
        return host;
    }

    /// <summary>The targets as a table, then one line per VM with how its target was applied or why not.</summary>
    public static void Print(IAnsiConsole output, string host, bool dryRun, RebalanceMemoryResponse response)
    {
        output.MarkupLine($"{(dryRun ? "dry run: " : "")}{Markup.Escape(host)}: {Units.Bytes(response.DividedBytes)} divided among {response.Targets.Count} VM(s)");
        if (response.Targets.Count == 0) return;
        var table = new Table().AddColumns("VM", "memory", "demand", "reservation", "weight", "before", "target", "applied");
        foreach (var t in response.Targets)
            table.AddRow(Markup.Escape(t.Vm), t.PrivateMemory ? "private share" : "fully resident", Units.Bytes(t.DemandBytes), Units.Bytes(t.ReservationBytes),
                t.Weight.ToString(System.Globalization.CultureInfo.InvariantCulture), Units.Bytes(t.BeforeBytes), Units.Bytes(t.TargetBytes),
                t.Applied ? "[green]yes[/]" : dryRun ? "no" : "[yellow]no[/]");
        output.Write(table);
        foreach (var t in response.Targets)
            if (t.Note.Length > 0) output.MarkupLine($"{Markup.Escape(t.Vm)}: {Markup.Escape(t.Note)}");
    }
}
