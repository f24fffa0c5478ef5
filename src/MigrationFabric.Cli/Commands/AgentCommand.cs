namespace MigrationFabric.Cli.Commands;

using System.CommandLine;
using System.Net;
using MigrationFabric.Cli.Rendering;
using MigrationFabric.Grains.Membership;
using MigrationFabric.Grains.Storage;
using MigrationFabric.Host.Agent;
using MigrationFabric.Host.Telemetry;
using Spectre.Console;

/// <summary>mf agent: one host agent process (what a Kubernetes pod runs), joining a cluster through PostgreSQL or SQLite membership.</summary>
public static class AgentCommand
{
    /// <summary>The command.</summary>
    public static Command Create(MfApp app)
    {
        var name = new Option<string>("--name") { Description = "The host's name, unique in the cluster (default: MF_HOST_NAME, else the machine name)." };
        var budget = new Option<string>("--budget") { Description = "Physical memory VMs may have on this host.", DefaultValueFactory = _ => "1GiB" };
        var port = new Option<int>("--port") { Description = "Scheduler API / data-plane port.", DefaultValueFactory = _ => 7001 };
        var siloPort = new Option<int>("--silo-port") { Description = "Silo-to-silo port.", DefaultValueFactory = _ => 11111 };
        var listen = new Option<string>("--listen") { Description = "Address to listen on.", DefaultValueFactory = _ => "0.0.0.0" };
        var advertise = new Option<string>("--advertise") { Description = "Address other agents and schedulers reach this one at (default: MF_ADVERTISE, else 127.0.0.1)." };
        var postgres = new Option<string>("--postgres") { Description = "PostgreSQL connection string for membership and grain state (default: MF_POSTGRES)." };
        var sqlite = new Option<string>("--sqlite") { Description = "SQLite file for membership and grain state (one machine)." };
        var cluster = new Option<string>("--cluster-id") { Description = "The cluster's id in the membership table.", DefaultValueFactory = _ => "migrationfabric" };
        var cmd = new Command("agent", "Run one host agent that joins a cluster (PostgreSQL or SQLite membership) until stopped.")
            { name, budget, port, siloPort, listen, advertise, postgres, sqlite, cluster };
        cmd.SetAction((r, ct) => app.Guard(async () =>
        {
            ulong bytes = Units.ParseBytes(r.GetValue(budget)!) ?? throw new UsageException($"--budget '{r.GetValue(budget)}' is not a size (e.g. 4GiB).");
            if (!IPAddress.TryParse(r.GetValue(listen), out var address)) throw new UsageException($"--listen '{r.GetValue(listen)}' is not an IP address.");
            string pg = r.GetValue(postgres) ?? Environment.GetEnvironmentVariable("MF_POSTGRES") ?? "";
            string? file = r.GetValue(sqlite);
            if (pg.Length == 0 && file is null) throw new UsageException("give --postgres (or MF_POSTGRES) or --sqlite: the agents of a cluster meet in a shared membership table.");
            var options = new HostAgentOptions
            {
                HostName = r.GetValue(name) ?? Environment.GetEnvironmentVariable("MF_HOST_NAME") ?? Environment.MachineName,
                MemoryBudgetBytes = (long)bytes, ApiPort = r.GetValue(port), SiloPort = r.GetValue(siloPort), ListenAddress = address,
                AdvertisedHost = r.GetValue(advertise) ?? Environment.GetEnvironmentVariable("MF_ADVERTISE") ?? "127.0.0.1",
            };
            try
            {
                options.Validate();
            }
            catch (ArgumentException e)
            {
                throw new UsageException(e.Message);
            }
            IMembershipTable table;
            IGrainStorage storage;
            if (pg.Length > 0)
            {
                var t = new PostgresMembershipTable(pg, r.GetValue(cluster)!);
                var s = new PostgresGrainStorage(pg);
                await t.InitializeAsync(ct);
                await s.InitializeAsync(ct);
                (table, storage) = (t, s);
            }
            else
            {
                var t = new SqliteMembershipTable(file!, r.GetValue(cluster)!);
                var s = new SqliteGrainStorage(file!);
                await t.InitializeAsync(ct);
                await s.InitializeAsync(ct);
                (table, storage) = (t, s);
            }
            using var telemetry = TelemetrySetup.FromEnvironment(new TelemetryOptions { ServiceName = "migrationfabric-host" });
            var agent = new HostAgent(options, table, storage);
            await agent.StartAsync(ct);
            app.Output.WriteLine($"host agent {agent.HostName} serving {agent.Endpoint} (budget {Units.Bytes(bytes)}, OTLP export {(telemetry.Exporting ? "on" : "off")})");
            try
            {
                await Task.Delay(Timeout.Infinite, ct);
            }
            catch (OperationCanceledException)
            {
            }
            app.Output.WriteLine("leaving the cluster ...");
            await agent.StopAsync(CancellationToken.None);
            return 0;
        }));
        return cmd;
    }
}
