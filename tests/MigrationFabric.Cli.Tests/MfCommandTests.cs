namespace MigrationFabric.Cli.Tests;

using MigrationFabric.Host.Agent;
using Spectre.Console;
using Xunit;

/// <summary>Three host agents on loopback that the mf commands talk to.</summary>
public sealed class CliCluster : IAsyncLifetime
{
    public EmbeddedCluster Cluster { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        Cluster = await EmbeddedCluster.StartAsync(new EmbeddedClusterOptions { Hosts = 3, MemoryBudgetBytes = 512L << 20 }, cts.Token);
    }

    public async Task DisposeAsync() => await Cluster.DisposeAsync();
}

/// <summary>The mf command line run in-process (its parser and commands) with output captured.</summary>
public sealed class MfCommandTests(CliCluster fixture) : IClassFixture<CliCluster>
{
    private static Task<InProcessMf.Result> Mf(string? endpoint, params string[] args) => InProcessMf.RunAsync(endpoint, 200, args);

    private string Endpoint => fixture.Cluster.Endpoint.ToString();

    [Fact]
    public async Task Hosts_lists_every_host_with_its_endpoint()
    {
        var r = await Mf(Endpoint, "hosts");
        Assert.Equal(0, r.Exit);
        foreach (var a in fixture.Cluster.Agents)
        {
            Assert.Contains(a.HostName, r.Out);
            Assert.Contains(a.Endpoint.ToString().TrimEnd('/'), r.Out);
        }
    }

    [Fact]
    public async Task Vm_create_list_and_rm_round_trip_and_the_endpoint_option_beats_MF_ENDPOINT()
    {
        var created = await Mf("http://127.0.0.1:1", "vm", "create", "cli-vm1", "--host", "host-b", "--memory", "32MiB", "--workload", "kv", "--endpoint", Endpoint);
        Assert.True(created.Exit == 0, created.Err);
        Assert.Contains("created VM cli-vm1 on host-b (32.0 MiB, key-value)", created.Out);
        Assert.NotNull(fixture.Cluster.Agent("host-b").Hypervisor.Find("cli-vm1"));

        var list = await Mf(Endpoint, "vm", "list", "--host", "host-b");
        Assert.Equal(0, list.Exit);
        Assert.Contains("cli-vm1", list.Out);
        Assert.Contains("key-value", list.Out);

        var rm = await Mf(Endpoint, "vm", "rm", "cli-vm1");
        Assert.Equal(0, rm.Exit);
        Assert.Contains("32.0 MiB freed", rm.Out);
        Assert.Null(fixture.Cluster.Agent("host-b").Hypervisor.Find("cli-vm1"));
    }

    [Fact]
    public async Task Migrate_with_watch_shows_progress_and_the_verified_outcome()
    {
        Assert.Equal(0, (await Mf(Endpoint, "vm", "create", "cli-vm2", "--host", "host-a", "--memory", "32MiB", "--workload", "hot-set", "--dirty-rate", "2000")).Exit);
        var r = await Mf(Endpoint, "migrate", "cli-vm2", "--to", "host-c", "--strategy", "hybrid", "--downtime-ms", "200", "--bandwidth", "512MiB/s", "--watch");
        Assert.True(r.Exit == 0, r.Out + r.Err);
        Assert.Contains("cli-vm2 host-a -> host-c (hybrid)", r.Out);
        Assert.Contains("cli-vm2 -> host-c: completed", r.Out);
        Assert.Contains("integrity 8192 pages checked, 0 mismatched", r.Out);
        // The agents' default data channel is TCP (EmbeddedClusterOptions.DataChannel): the report says which carried the pages.
        Assert.Contains("data channel TCP", r.Out);
        var migrations = await Mf(Endpoint, "migrations", "--vm", "cli-vm2");
        Assert.Contains("completed", migrations.Out);
        Assert.NotNull(fixture.Cluster.Agent("host-c").Hypervisor.Find("cli-vm2"));
        Assert.Equal(0, (await Mf(Endpoint, "vm", "rm", "cli-vm2")).Exit);
    }

    [Fact]
    public async Task Errors_print_the_grpc_status_and_message_and_exit_non_zero()
    {
        var cancel = await Mf(Endpoint, "cancel", "no-such-migration");
        Assert.Equal(1, cancel.Exit);
        Assert.Contains("NotFound (5): migration 'no-such-migration' does not exist.", cancel.Err);

        var host = await Mf(Endpoint, "vm", "create", "cli-vm3", "--host", "host-z");
        Assert.Equal(1, host.Exit);
        Assert.Contains("NotFound (5): host 'host-z'", host.Err);

        var big = await Mf(Endpoint, "vm", "create", "cli-vm3", "--host", "host-a", "--memory", "2GiB");
        Assert.Equal(1, big.Exit);
        Assert.Contains("ResourceExhausted (8)", big.Err);

        var unimplemented = await Mf(Endpoint, "migrate", "cli-vm3", "--to", "host-b", "--strategy", "agile");
        Assert.Equal(1, unimplemented.Exit);
        Assert.Contains("Unimplemented (12)", unimplemented.Err);

        var unreachable = await Mf("http://127.0.0.1:1", "hosts");
        Assert.Equal(1, unreachable.Exit);
        Assert.Contains("Unavailable (14)", unreachable.Err);
    }

    [Fact]
    public async Task Bad_command_lines_are_usage_errors()
    {
        var size = await Mf(Endpoint, "vm", "create", "x", "--host", "host-a", "--memory", "lots");
        Assert.Equal(2, size.Exit);
        Assert.Contains("--memory 'lots' is not a size", size.Err);
        var strategy = await Mf(Endpoint, "migrate", "x", "--to", "host-b", "--strategy", "teleport");
        Assert.Equal(2, strategy.Exit);
        Assert.Contains("--strategy 'teleport' is not a strategy", strategy.Err);
        var workload = await Mf(Endpoint, "vm", "create", "x", "--host", "host-a", "--workload", "crypto");
        Assert.Equal(2, workload.Exit);
        var endpoint = await Mf("not a url", "hosts");
        Assert.Equal(2, endpoint.Exit);
        Assert.Contains("--endpoint 'not a url' is not an http(s) URL", endpoint.Err);
        var missing = await Mf(Endpoint, "migrate", "x");
        Assert.NotEqual(0, missing.Exit);
    }
}

/// <summary>mf demo in-process: its own embedded cluster, a migration, a results table, exit 0.</summary>
public sealed class MfDemoTests
{
    [Fact]
    public async Task Demo_runs_an_embedded_cluster_migrates_and_prints_the_results_table()
    {
        var outWriter = new StringWriter();
        var errWriter = new StringWriter();
        IAnsiConsole Console(TextWriter w) => AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(w), Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors, Interactive = InteractionSupport.No,
        });
        var app = new MfApp(Console(outWriter), Console(errWriter), _ => null);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        int exit = await app.RunAsync(["demo", "--strategy", "pre-copy", "post-copy", "--workload", "idle", "key-value"], cts.Token);
        string output = outWriter.ToString();
        Assert.True(exit == 0, output + errWriter);
        Assert.Contains("3 host agents on loopback", output);
        Assert.Contains("migration results", output);
        Assert.Contains("demo passed: 4 migrations", output);
        // The results table says which data channel carried each migration's pages (TCP, the agents' default).
        Assert.Contains("channel", output);
        Assert.Equal(4, output.Split('\n').Count(l => l.Contains("-copy", StringComparison.Ordinal) && l.Contains(" TCP ", StringComparison.Ordinal)));
        foreach (var vm in new[] { "pre-copy-idle", "pre-copy-key-value", "post-copy-idle", "post-copy-key-value" })
            Assert.Contains($"{vm}", output);
    }
}
