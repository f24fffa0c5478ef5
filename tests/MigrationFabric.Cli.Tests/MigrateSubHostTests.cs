namespace MigrationFabric.Cli.Tests;

using MigrationFabric.Host.Agent;
using Spectre.Console;
using Xunit;

/// <summary>Four host agents: a large source, a small host (40 MiB) and two large ones, for split, scatter-gather and vmem-direct.</summary>
public sealed class SubHostCluster : IAsyncLifetime
{
    public EmbeddedCluster Cluster { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        Cluster = await EmbeddedCluster.StartAsync(new EmbeddedClusterOptions
        {
            Hosts = 4, MemoryBudgetBytes = 512L << 20, HostBudgetsBytes = [512L << 20, 40L << 20],
        }, cts.Token);
    }

    public async Task DisposeAsync() => await Cluster.DisposeAsync();
}

/// <summary>mf migrate with --sub (split, scatter-gather) and vmem-direct: parsing, usage errors, server errors, and one progress bar per destination.</summary>
public sealed class MigrateSubHostTests(SubHostCluster fixture) : IClassFixture<SubHostCluster>
{
    private Task<InProcessMf.Result> Mf(params string[] args) => InProcessMf.RunAsync(fixture.Cluster.Endpoint.ToString(), 200, args);

    [Fact]
    public async Task Split_with_two_sub_hosts_shows_a_bar_per_destination_and_the_verified_outcome()
    {
        Assert.Equal(0, (await Mf("vm", "create", "cs-split", "--host", "host-a", "--memory", "64MiB", "--workload", "memory-benchmark")).Exit);
        var local = fixture.Cluster.Agent("host-a").Hypervisor.Find("cs-split")!;
        while (local.Workload is null || local.Workload.TotalOperations < 64L << 20) await Task.Delay(20);

        var r = await Mf("migrate", "cs-split", "--to", "host-b", "--strategy", "split", "--sub", "host-c", "--sub", "host-d", "--watch");

        Assert.True(r.Exit == 0, r.Out + r.Err);
        Assert.Contains("cs-split host-a -> host-b + sub-hosts host-c, host-d (split)", r.Out);
        Assert.Contains("cs-split -> host-b: completed", r.Out);
        foreach (var (host, role) in new[] { ("host-b", "main"), ("host-c", "sub-host"), ("host-d", "sub-host") })
            Assert.Contains($"  {host} ({role}): ", r.Out);
        Assert.Contains("integrity 16384 pages checked, 0 mismatched", r.Out);
        var list = await Mf("vm", "list", "--host", "host-b");
        Assert.Equal(0, list.Exit);
        Assert.Matches(@"host-c [0-9.]+ MiB, host-d [0-9.]+ MiB", list.Out);
        // The sub-hosts say what they hold for others.
        var hosts = await Mf("hosts");
        Assert.Equal(0, hosts.Exit);
        Assert.Matches(@"host-c .* [0-9.]+ MiB .* [0-9.]+ MiB", hosts.Out);
        Assert.Contains("held", hosts.Out);
        Assert.Equal(0, (await Mf("vm", "rm", "cs-split")).Exit);
    }

    [Fact]
    public async Task Sub_host_options_that_cannot_work_are_usage_errors()
    {
        var split = await Mf("migrate", "x", "--to", "host-b", "--strategy", "split");
        Assert.Equal(2, split.Exit);
        Assert.Contains("--strategy split needs at least one --sub HOST", split.Err);
        var sg = await Mf("migrate", "x", "--to", "host-b", "--strategy", "scatter-gather");
        Assert.Equal(2, sg.Exit);
        Assert.Contains("--strategy scatter-gather needs at least one", sg.Err);
        var plain = await Mf("migrate", "x", "--to", "host-b", "--strategy", "pre-copy", "--sub", "host-c");
        Assert.Equal(2, plain.Exit);
        Assert.Contains("--sub is only for split and scatter-gather, not pre-copy", plain.Err);
        var method = await Mf("migrate", "x", "--to", "host-b", "--strategy", "vmem-direct", "--paging-method", "3");
        Assert.Equal(2, method.Exit);
        Assert.Contains("--paging-method must be 1 or 2", method.Err);
        var methodElsewhere = await Mf("migrate", "x", "--to", "host-b", "--paging-method", "2");
        Assert.Equal(2, methodElsewhere.Exit);
        Assert.Contains("--paging-method is only for vmem-direct", methodElsewhere.Err);
    }

    [Fact]
    public async Task Server_side_refusals_print_the_status_and_exit_1()
    {
        Assert.Equal(0, (await Mf("vm", "create", "cs-err", "--host", "host-a", "--memory", "64MiB")).Exit);
        var unknown = await Mf("migrate", "cs-err", "--to", "host-b", "--strategy", "split", "--sub", "host-z");
        Assert.Equal(1, unknown.Exit);
        Assert.Contains("NotFound (5): sub_hosts names 'host-z'", unknown.Err);
        var same = await Mf("migrate", "cs-err", "--to", "host-b", "--strategy", "split", "--sub", "host-b");
        Assert.Equal(1, same.Exit);
        Assert.Contains("InvalidArgument (3)", same.Err);
        var roomy = await Mf("migrate", "cs-err", "--to", "host-c", "--strategy", "vmem-direct");
        Assert.Equal(1, roomy.Exit);
        Assert.Contains("FailedPrecondition (9)", roomy.Err);
        Assert.Contains("use pre-copy", roomy.Err);
        Assert.Equal(0, (await Mf("vm", "rm", "cs-err")).Exit);
    }

    [Fact]
    public async Task Migrate_help_names_the_new_strategies_and_sub()
    {
        var r = await Mf("migrate", "--help");
        Assert.Equal(0, r.Exit);
        foreach (var word in new[] { "--sub", "split", "scatter-gather", "vmem-direct", "naive-swap", "vmem-devirtualize", "--paging-method" })
            Assert.Contains(word, r.Out);
    }
}
