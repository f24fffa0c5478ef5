namespace MigrationFabric.Cli.Tests;

using MigrationFabric.Host.Agent;
using Spectre.Console;
using Xunit;

/// <summary>Two host agents for the --downtime-limit-ms tests.</summary>
public sealed class DowntimeLimitCluster : IAsyncLifetime
{
    public EmbeddedCluster Cluster { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        Cluster = await EmbeddedCluster.StartAsync(new EmbeddedClusterOptions { Hosts = 2, MemoryBudgetBytes = 128L << 20 }, cts.Token);
    }

    public async Task DisposeAsync() => await Cluster.DisposeAsync();
}

/// <summary>mf migrate --downtime-limit-ms: parsed, sent as limits.downtime_limit (the server's checks reach the user), and the pre-copy ending in the outcome.</summary>
public sealed class DowntimeLimitFlagTests(DowntimeLimitCluster fixture) : IClassFixture<DowntimeLimitCluster>
{
    // Wide enough that the messages asserted on are not wrapped.
    private Task<InProcessMf.Result> Mf(params string[] args) => InProcessMf.RunAsync(fixture.Cluster.Endpoint.ToString(), 400, args);

    [Fact]
    public async Task The_flag_is_parsed_and_sent_as_limits_downtime_limit()
    {
        Assert.Equal(0, (await Mf("vm", "create", "dlf-vm", "--host", "host-a", "--memory", "16MiB")).Exit);

        var notANumber = await Mf("migrate", "dlf-vm", "--to", "host-b", "--downtime-limit-ms", "soon");
        // System.CommandLine's parse error: exit 1, the bad value named.
        Assert.True(notANumber.Exit == 1, notANumber.Out + notANumber.Err);
        Assert.Contains("soon", notANumber.Err);
        // What the server says about the value it received: 100 ms below the 200 ms target given beside it.
        var belowTarget = await Mf("migrate", "dlf-vm", "--to", "host-b", "--downtime-ms", "200", "--downtime-limit-ms", "100");
        Assert.Equal(1, belowTarget.Exit);
        Assert.Contains("InvalidArgument (3)", belowTarget.Err);
        Assert.Contains("limits.downtime_limit (100 ms) must be at least limits.downtime_target (200 ms)", belowTarget.Err);
        var hybrid = await Mf("migrate", "dlf-vm", "--to", "host-b", "--strategy", "hybrid", "--downtime-limit-ms", "500");
        Assert.Equal(1, hybrid.Exit);
        Assert.Contains("limits.downtime_limit is only for pre-copy, not hybrid", hybrid.Err);
        var help = await Mf("migrate", "--help");
        Assert.Contains("--downtime-limit-ms", help.Out);

        // Accepted, and the outcome says how pre-copy ended (an idle VM converges in its first rounds).
        var ok = await Mf("migrate", "dlf-vm", "--to", "host-b", "--downtime-limit-ms", "5000", "--watch");
        Assert.True(ok.Exit == 0, ok.Out + ok.Err);
        Assert.Contains("completed", ok.Out);
        Assert.Contains("pre-copy ended (converged): converged after", ok.Out);
        Assert.Equal(0, (await Mf("vm", "rm", "dlf-vm")).Exit);
    }
}
