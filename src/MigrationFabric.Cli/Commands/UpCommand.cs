namespace MigrationFabric.Cli.Commands;

using System.CommandLine;
using MigrationFabric.Cli.Rendering;
using MigrationFabric.Host.Agent;
using MigrationFabric.Host.Telemetry;
using Spectre.Console;

/// <summary>mf up: an embedded cluster on loopback that stays up until Ctrl-C.</summary>
public static class UpCommand
{
    /// <summary>The command.</summary>
    public static Command Create(MfApp app)
    {
        var hosts = new Option<int>("--hosts") { Description = "Number of host agents.", DefaultValueFactory = _ => 3 };
        var port = new Option<int>("--port") { Description = "API port of the first host; the others take the next ones (0 = any free port).", DefaultValueFactory = _ => 7001 };
        var budget = new Option<string>("--budget") { Description = "Physical-memory budget of each host.", DefaultValueFactory = _ => "1GiB" };
        var cmd = new Command("up", "Start an embedded cluster on this machine and keep it up until Ctrl-C.") { hosts, port, budget };
        cmd.SetAction((r, ct) => app.Guard(async () =>
        {
            ulong bytes = Units.ParseBytes(r.GetValue(budget)!) ?? throw new UsageException($"--budget '{r.GetValue(budget)}' is not a size (e.g. 1GiB).");
            EmbeddedClusterOptions options;
            try
            {
                options = new EmbeddedClusterOptions { Hosts = r.GetValue(hosts), FirstApiPort = r.GetValue(port), MemoryBudgetBytes = (long)bytes };
                options.Validate();
            }
            catch (ArgumentException e)
            {
                throw new UsageException(e.Message);
            }
            using var telemetry = TelemetrySetup.FromEnvironment();
            await using var cluster = await EmbeddedCluster.StartAsync(options, ct);
            var table = new Table().AddColumns("host", "endpoint", "budget");
            foreach (var a in cluster.Agents) table.AddRow(a.HostName, a.Endpoint.ToString(), Units.Bytes(a.Hypervisor.BudgetBytes));
            app.Output.Write(table);
            app.Output.MarkupLine($"cluster up; try [bold]mf hosts --endpoint {Markup.Escape(cluster.Endpoint.ToString())}[/]. Ctrl-C stops it.");
            try
            {
                await Task.Delay(Timeout.Infinite, ct);
            }
            catch (OperationCanceledException)
            {
            }
            app.Output.MarkupLine("stopping ...");
            return 0;
        }));
        return cmd;
    }
}
