using MigrationFabric.Grains.Messaging;
using MigrationFabric.Grains.Runtime;
using Xunit;

namespace MigrationFabric.Grains.Tests.Runtime;

/// <summary>Cluster behaviour, run once over the in-process transport and (in <see cref="RpcMultiSiloTests"/>) over real sockets.</summary>
public abstract class MultiSiloTestsBase
{
    protected abstract Func<ISiloTransport>? Transport { get; }

    private TestCluster NewCluster(Action<SiloBuilder>? configure = null) => new(Transport, configure);

    [Fact]
    public async Task Racing_callers_on_every_silo_end_up_on_a_single_activation()
    {
        await using var cluster = NewCluster();
        await cluster.StartAsync(3);
        // PreferLocal makes every silo try to activate the grain itself: the directory must pick one winner.
        for (int round = 0; round < 5; round++)
        {
            string key = $"race-{round}";
            var calls = new List<Task<string>>();
            foreach (var silo in cluster.Silos)
                for (int i = 0; i < 8; i++)
                    calls.Add(Task.Run(() => silo.GrainFactory.GetGrain<IPreferLocalGrain>(key).WhereAmI()));
            var homes = await Task.WhenAll(calls);
            Assert.Single(homes.Distinct());
            Assert.Equal(1, cluster.Silos.Count(s => s.HasActivation(new GrainId(typeof(IPreferLocalGrain).FullName!, key))));
        }
    }

    [Fact]
    public async Task Counter_updated_from_every_silo_concurrently_loses_no_update()
    {
        await using var cluster = NewCluster();
        await cluster.StartAsync(3);
        var calls = new List<Task<int>>();
        foreach (var silo in cluster.Silos)
            for (int i = 0; i < 30; i++)
                calls.Add(Task.Run(() => silo.GrainFactory.GetGrain<ICounterGrain>("shared").Add(1)));
        await Task.WhenAll(calls);
        Assert.Equal(90, await cluster.Silos[1].GrainFactory.GetGrain<ICounterGrain>("shared").Get());
        Assert.Equal(1, cluster.Ledger.Count("shared"));
    }

    [Fact]
    public async Task Placement_hash_spreads_grains_prefer_local_stays_local_and_silo_name_pins_host_grains()
    {
        await using var cluster = NewCluster();
        await cluster.StartAsync(3);
        var homes = new HashSet<string>();
        for (int i = 0; i < 30; i++)
            homes.Add(await cluster.Silos[0].GrainFactory.GetGrain<ICounterGrain>($"h{i}").WhereAmI());
        Assert.Equal(3, homes.Count);

        foreach (var silo in cluster.Silos)
            Assert.Equal(silo.Address.ToString(), await silo.GrainFactory.GetGrain<IPreferLocalGrain>($"local-{silo.Address.Port}").WhereAmI());

        for (int i = 0; i < 3; i++)
            Assert.Equal(cluster.Silos[i].Address.ToString(), await cluster.Silos[(i + 1) % 3].GrainFactory.GetGrain<IHostGrain>($"silo{i}").WhereAmI());
        var missing = await Assert.ThrowsAsync<GrainRoutingException>(() => cluster.Silos[0].GrainFactory.GetGrain<IHostGrain>("no-such-host").WhereAmI());
        Assert.Contains("no-such-host", missing.Message);
    }

    [Fact]
    public async Task Arguments_and_results_cross_silos_intact_and_remote_exceptions_name_their_type()
    {
        await using var cluster = NewCluster();
        await cluster.StartAsync(2);
        // Find a key placed on the other silo so the call really crosses.
        var caller = cluster.Silos[0];
        string key = Enumerable.Range(0, 100).Select(i => $"echo{i}")
            .First(k => cluster.Silos[1].Address.Equals(Owner(cluster, k)));
        var g = caller.GrainFactory.GetGrain<IEchoGrain>(key);
        var bytes = Enumerable.Range(0, 5000).Select(i => (byte)i).ToArray();
        Assert.Equal(bytes, await g.Bytes(bytes));
        var rec = new EchoRecord("n", [1, 2, 3], Guid.NewGuid());
        var back = await g.Record(rec);
        Assert.Equal("n!", back.Name);
        Assert.Equal(rec.Values, back.Values);
        Assert.Null(await g.NullableString(null));
        Assert.Equal("é✓", await g.NullableString("é✓"));
        Assert.Equal(6, await g.Sum(1, 2, 3.9));
        var e = await Assert.ThrowsAsync<RemoteGrainException>(() => g.Throw("remote bad"));
        Assert.Equal("System.ArgumentException", e.RemoteType);
        Assert.Equal("remote bad", e.RemoteMessage);
        Assert.True(cluster.Silos[1].HasActivation(new GrainId(typeof(IEchoGrain).FullName!, key)));
    }

    [Fact]
    public async Task Trace_context_crosses_silos()
    {
        await using var cluster = NewCluster();
        await cluster.StartAsync(2);
        string key = Enumerable.Range(0, 100).Select(i => $"tr{i}").First(k => cluster.Silos[1].Address.Equals(Owner(cluster, k, typeof(ITraceGrain))));
        using var root = new System.Diagnostics.Activity("root").SetIdFormat(System.Diagnostics.ActivityIdFormat.W3C);
        root.TraceStateString = "vendor=1";
        root.Start();
        var parent = await cluster.Silos[0].GrainFactory.GetGrain<ITraceGrain>(key).ParentOfMyTurn();
        Assert.Equal(root.TraceId.ToString(), SingleSiloTests.ActivityTraceId(parent!));
    }

    [Fact]
    public async Task A_joining_silo_takes_its_share_of_the_directory_and_no_grain_gets_a_second_activation()
    {
        await using var cluster = NewCluster();
        await cluster.StartAsync(2);
        var keys = Enumerable.Range(0, 60).Select(i => $"j{i}").ToArray();
        foreach (var k in keys) await cluster.Silos[0].GrainFactory.GetGrain<ICounterGrain>(k).Add(1);
        int before = cluster.Silos.Sum(s => s.DirectoryPartitionCount);
        Assert.Equal(60, before);

        var joined = await cluster.StartSiloAsync("silo2");
        await cluster.WaitForViewAsync();
        // Every silo reports its activations to the new owners; the new silo's partition fills up.
        await SingleSiloTests.WaitUntil(() => joined.DirectoryPartitionCount > 0 && cluster.Silos.Sum(s => s.DirectoryPartitionCount) == 60);
        foreach (var k in keys)
            Assert.Equal(2, await joined.GrainFactory.GetGrain<ICounterGrain>(k).Add(1)); // same activation, found through the new owner
        Assert.All(keys, k => Assert.Equal(1, cluster.Ledger.Count(k)));
        Assert.Equal(0, joined.ActivationCount);
    }

    [Fact]
    public async Task A_call_on_a_stale_location_reaching_the_silo_that_owns_the_grains_entry_is_forwarded_to_its_new_home()
    {
        await using var cluster = NewCluster();
        await cluster.StartAsync(3);
        var (caller, stale, home) = (cluster.Silos[0], cluster.Silos[1], cluster.Silos[2]);
        // The stale silo owns the directory entry, so its registration attempt answers without an await: where the
        // catalog used to create, fail and drop activations in a synchronous loop until the caller's request timeout.
        string key = Enumerable.Range(0, 1000).Select(i => $"mv{i}").First(k => stale.Address.Equals(Owner(cluster, k, typeof(IMovableGrain))));
        var id = new GrainId(typeof(IMovableGrain).FullName!, key);
        Assert.Equal(stale.Address.ToString(), await stale.GrainFactory.GetGrain<IMovableGrain>(key).WhereAmI());
        var g = caller.GrainFactory.GetGrain<IMovableGrain>(key);
        Assert.Equal(stale.Address.ToString(), await g.WhereAmI()); // the caller now caches the stale silo
        await g.Leave();
        await SingleSiloTests.WaitUntil(() => !stale.HasActivation(id));
        Assert.Equal(home.Address.ToString(), await home.GrainFactory.GetGrain<IMovableGrain>(key).WhereAmI());

        // As a VM's grain after a migration: the caller's cache still names the old silo, which must forward the call.
        Assert.Equal(home.Address.ToString(), await g.WhereAmI());
        Assert.False(stale.HasActivation(id));
        Assert.True(home.HasActivation(id));
    }

    private static MigrationFabric.Grains.Membership.SiloAddress? Owner(TestCluster cluster, string key, Type? iface = null) =>
        new GrainDirectory.ConsistentHashRing(0, cluster.Silos[0].Membership.Current.ActiveSilos, 30)
            .Owner(new GrainId((iface ?? typeof(IEchoGrain)).FullName!, key));
}

public sealed class InProcessMultiSiloTests : MultiSiloTestsBase
{
    protected override Func<ISiloTransport>? Transport => null;

    [Fact]
    public async Task A_dead_silo_fails_calls_fast_then_its_grains_come_back_elsewhere_from_persisted_state()
    {
        await using var cluster = new TestCluster();
        await cluster.StartAsync(3);
        var victim = cluster.Silos[2];
        var caller = cluster.Silos[0];
        // Random placement: find keys that landed on the victim.
        var onVictim = new List<string>();
        for (int i = 0; onVictim.Count < 3 && i < 200; i++)
        {
            var g = caller.GrainFactory.GetGrain<IPersistentCounterGrain>($"p{i}");
            await g.Add(5);
            if (await g.WhereAmI() == victim.Address.ToString()) onVictim.Add($"p{i}");
        }
        Assert.Equal(3, onVictim.Count);

        cluster.Network.Kill(victim.Address.Port);
        await victim.AbortAsync();
        cluster.Silos.Remove(victim);

        // Before membership declares it dead: a clear, fast failure.
        var started = DateTime.UtcNow;
        var error = await Assert.ThrowsAsync<SiloUnavailableException>(() => caller.GrainFactory.GetGrain<IPersistentCounterGrain>(onVictim[0]).Get());
        Assert.Equal(victim.Address, error.Silo);
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(5));

        // After: the grains reactivate on a live silo with their stored state.
        using var cts = new CancellationTokenSource(TestCluster.Patience);
        await caller.Membership.WaitForAsync(v => !v.IsActive(victim.Address), cts.Token);
        foreach (var key in onVictim)
        {
            var g = caller.GrainFactory.GetGrain<IPersistentCounterGrain>(key);
            int value = await RetryWhileUnavailable(() => g.Get());
            Assert.Equal(5, value);
            Assert.NotEqual(victim.Address.ToString(), await g.WhereAmI());
            Assert.Equal(6, await g.Add(1));
        }
    }

    internal static async Task<T> RetryWhileUnavailable<T>(Func<Task<T>> call)
    {
        var deadline = DateTime.UtcNow + TestCluster.Patience;
        while (true)
        {
            try { return await call(); }
            catch (SiloUnavailableException) when (DateTime.UtcNow < deadline) { await Task.Delay(50); }
        }
    }
}
