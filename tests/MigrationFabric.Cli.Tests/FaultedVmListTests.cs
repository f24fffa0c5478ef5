namespace MigrationFabric.Cli.Tests;

using MigrationFabric.Cli.Client;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Host.Agent;
using Xunit;

/// <summary>A real FAULTED VM: split across sub-hosts, one sub-host agent killed after switch-over, the guest faults on a page only it held; mf says so.</summary>
public sealed class FaultedVmListTests : IAsyncLifetime
{
    private EmbeddedCluster _cluster = null!;

    public async Task InitializeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        // host-b is too small for the VM alone, so the split main keeps part and host-c/host-d hold the rest.
        _cluster = await EmbeddedCluster.StartAsync(new EmbeddedClusterOptions
        {
            Hosts = 4, MemoryBudgetBytes = 512L << 20, HostBudgetsBytes = [512L << 20, 24L << 20], Membership = EmbeddedCluster.FastMembership(),
        }, cts.Token);
    }

    public async Task DisposeAsync() => await _cluster.DisposeAsync();

    private Task<InProcessMf.Result> Mf(params string[] args) => InProcessMf.RunAsync(_cluster.Endpoint.ToString(), 200, args);

    [Fact]
    public async Task Vm_list_and_describe_show_a_vm_whose_vcpus_stopped_on_a_lost_page_as_FAULTED_with_the_error()
    {
        Assert.Equal(0, (await Mf("vm", "create", "h6-split", "--host", "host-a", "--memory", "64MiB", "--workload", "memory-benchmark")).Exit);
        var local = _cluster.Agent("host-a").Hypervisor.Find("h6-split")!;
        using var warm = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (local.Workload is null || local.Workload.TotalOperations < 64L << 20) await Task.Delay(20, warm.Token);
        var migrated = await Mf("migrate", "h6-split", "--to", "host-b", "--strategy", "split", "--sub", "host-c", "--sub", "host-d", "--watch");
        Assert.True(migrated.Exit == 0, migrated.Out + migrated.Err);

        var lost = _cluster.Agent("host-d").Silo.Address;
        await _cluster.Agent("host-d").KillAsync();

        // The sweeping guest soon touches a page only host-d held; until membership declares host-d dead, the VM's grain may answer Unavailable.
        using var client = new FabricClient(_cluster.Endpoint);
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        Vm vm = new();
        while (vm.State != VmState.Faulted)
        {
            try
            {
                vm = await client.DescribeVmAsync("h6-split", wait.Token);
            }
            catch (MigrationFabric.Rpc.RpcException e) when (e.StatusCode == MigrationFabric.Rpc.StatusCode.Unavailable)
            {
            }
            if (vm.State != VmState.Faulted) await Task.Delay(50, wait.Token);
        }

        // vm list asks the VM registry grain, which may have lived on host-d: until every survivor's view has host-d dead, such a
        // call answers UNAVAILABLE (the documented, retryable answer); after that the grain reactivates elsewhere.
        foreach (var name in new[] { "host-a", "host-b", "host-c" })
            await _cluster.Agent(name).Silo.Membership.WaitForAsync(v => v.GetStatus(lost) == MigrationFabric.Grains.Membership.SiloStatus.Dead, wait.Token);

        var list = await Mf("vm", "list", "--host", "host-b");
        Assert.True(list.Exit == 0, list.Out + list.Err);
        // The table's row (the lines below it, FAULTED: and MEMORY LOST:, name the VM too).
        var rows = list.Out.Split('\n').Where(l => l.Contains("h6-split", StringComparison.Ordinal) && !l.StartsWith("FAULTED:", StringComparison.Ordinal)
            && !l.StartsWith("MEMORY LOST:", StringComparison.Ordinal)).ToList();
        Assert.True(rows.Count == 1, list.Out);
        Assert.Contains("FAULTED", rows[0]);
        var said = list.Out.Split('\n').Single(l => l.StartsWith("FAULTED: VM h6-split on host-b: its vCPUs stopped: ", StringComparison.Ordinal));
        Assert.StartsWith("PageFaultException", said["FAULTED: VM h6-split on host-b: its vCPUs stopped: ".Length..]);
        // The error is said in full (a long one wraps at the console's width).
        static string Squeezed(string text) => string.Concat(text.Where(c => !char.IsWhiteSpace(c)));
        Assert.Contains(Squeezed(vm.VcpuError), Squeezed(list.Out));

        var one = await Mf("vm", "describe", "h6-split");
        Assert.True(one.Exit == 0, one.Out + one.Err);
        Assert.Contains("FAULTED: VM h6-split on host-b: its vCPUs stopped: PageFaultException", one.Out);
    }
}
