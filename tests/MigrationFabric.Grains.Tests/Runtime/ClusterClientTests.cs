using System.Diagnostics;
using MigrationFabric.Grains.Membership;
using MigrationFabric.Grains.Messaging;
using MigrationFabric.Grains.Runtime;
using Xunit;

namespace MigrationFabric.Grains.Tests.Runtime;

public sealed class ClusterClientTests
{
    [Fact]
    public async Task A_client_outside_the_silos_calls_grains_through_a_gateway_with_timeouts_and_trace_context()
    {
        await using var cluster = new TestCluster(() => new RpcSiloTransport(), b => b.Configure(o => o.RequestTimeout = TimeSpan.FromSeconds(10)));
        await cluster.StartAsync(2);
        await using var client = ClusterClient.ForMembershipTable(cluster.Table, new RpcSiloTransport(),
            new ClusterClientOptions { RequestTimeout = TimeSpan.FromSeconds(20) });
        await client.ConnectAsync(CancellationToken.None);

        var calls = Enumerable.Range(0, 40).Select(_ => client.GrainFactory.GetGrain<ICounterGrain>("from-client").Add(1));
        await Task.WhenAll(calls);
        Assert.Equal(40, await cluster.Silos[1].GrainFactory.GetGrain<ICounterGrain>("from-client").Get());

        using (var root = new Activity("client-root").SetIdFormat(ActivityIdFormat.W3C).Start())
        {
            var parent = await client.GrainFactory.GetGrain<ITraceGrain>("client-trace").ParentOfMyTurn();
            Assert.Equal(root.TraceId.ToString(), SingleSiloTests.ActivityTraceId(parent!));
        }

        // The client honours the method's [ResponseTimeout("00:00:00.200")].
        var timeout = await Assert.ThrowsAsync<GrainCallTimeoutException>(() => client.GrainFactory.GetGrain<ISlowGrain>("s").SleepShortTimeout(3000));
        Assert.Contains("200 ms", timeout.Message);
    }

    [Fact]
    public async Task A_client_skips_a_dead_gateway_and_fails_clearly_with_no_cluster()
    {
        await using var cluster = new TestCluster(() => new RpcSiloTransport());
        await cluster.StartAsync(2);
        var dead = cluster.Silos[0].Address;
        var live = cluster.Silos[1].Address;
        await cluster.Silos[0].AbortAsync();
        cluster.Silos.RemoveAt(0);
        using (var cts = new CancellationTokenSource(TestCluster.Patience))
            await cluster.Silos[0].Membership.WaitForAsync(v => !v.IsActive(dead), cts.Token); // else routing may still need the dead silo
        await using var client = new ClusterClient(new RpcSiloTransport(), _ => Task.FromResult<IReadOnlyList<SiloAddress>>([dead, live]));
        await client.ConnectAsync(CancellationToken.None);
        for (int i = 0; i < 4; i++) // round robin hits the dead gateway too, and moves on
            Assert.Equal(live.ToString(), await client.GrainFactory.GetGrain<IHostGrain>("silo1").WhereAmI());

        await using var lonely = new ClusterClient(new RpcSiloTransport(), _ => Task.FromResult<IReadOnlyList<SiloAddress>>([]));
        var e = await Assert.ThrowsAsync<GrainRoutingException>(() => lonely.ConnectAsync(CancellationToken.None));
        Assert.Contains("no active silo", e.Message);
    }
}
