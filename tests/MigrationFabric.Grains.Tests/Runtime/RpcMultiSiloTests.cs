using MigrationFabric.Grains.Messaging;
using Xunit;

namespace MigrationFabric.Grains.Tests.Runtime;

/// <summary>The cluster tests again, each silo on its own Kestrel port, messages over real HTTP/2 sockets.</summary>
public sealed class RpcMultiSiloTests : MultiSiloTestsBase
{
    protected override Func<ISiloTransport>? Transport => () => new RpcSiloTransport();

    [Fact]
    public async Task A_killed_silo_fails_calls_fast_over_sockets_then_its_grains_reactivate_elsewhere()
    {
        await using var cluster = new TestCluster(Transport);
        await cluster.StartAsync(3);
        var victim = cluster.Silos[2];
        var caller = cluster.Silos[0];
        var onVictim = new List<string>();
        for (int i = 0; onVictim.Count < 2 && i < 200; i++)
        {
            var g = caller.GrainFactory.GetGrain<IPersistentCounterGrain>($"k{i}");
            await g.Add(7);
            if (await g.WhereAmI() == victim.Address.ToString()) onVictim.Add($"k{i}");
        }
        Assert.Equal(2, onVictim.Count);

        await victim.AbortAsync(); // listener closed, no goodbye in the table
        cluster.Silos.Remove(victim);

        var started = DateTime.UtcNow;
        var error = await Assert.ThrowsAsync<SiloUnavailableException>(() => caller.GrainFactory.GetGrain<IPersistentCounterGrain>(onVictim[0]).Get());
        Assert.Equal(victim.Address, error.Silo);
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(5), "a refused connection must fail the call at once, not at the request timeout");

        using var cts = new CancellationTokenSource(TestCluster.Patience);
        await caller.Membership.WaitForAsync(v => !v.IsActive(victim.Address), cts.Token);
        foreach (var key in onVictim)
        {
            var g = caller.GrainFactory.GetGrain<IPersistentCounterGrain>(key);
            Assert.Equal(7, await InProcessMultiSiloTests.RetryWhileUnavailable(() => g.Get()));
            Assert.NotEqual(victim.Address.ToString(), await g.WhereAmI());
        }
    }
}
