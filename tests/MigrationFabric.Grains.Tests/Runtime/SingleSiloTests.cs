using System.Diagnostics;
using MigrationFabric.Grains.Runtime;
using Xunit;

namespace MigrationFabric.Grains.Tests.Runtime;

public sealed class SingleSiloTests
{
    [Fact]
    public async Task Calls_reach_one_activation_per_key_and_state_persists_between_calls()
    {
        await using var cluster = new TestCluster();
        await cluster.StartAsync(1);
        var f = cluster.Silos[0].GrainFactory;
        Assert.Equal(1, await f.GetGrain<ICounterGrain>("a").Add(1));
        Assert.Equal(3, await f.GetGrain<ICounterGrain>("a").Add(2));
        Assert.Equal(10, await f.GetGrain<ICounterGrain>("b").Add(10));
        Assert.Equal(1, cluster.Ledger.Count("a"));
        Assert.Equal(2, cluster.Silos[0].ActivationCount);
    }

    [Fact]
    public async Task Concurrent_calls_to_a_non_reentrant_grain_run_one_turn_at_a_time_in_arrival_order()
    {
        await using var cluster = new TestCluster();
        await cluster.StartAsync(1);
        var g = cluster.Silos[0].GrainFactory.GetGrain<ICounterGrain>("turns");
        var calls = Enumerable.Range(0, 200).Select(_ => Task.Run(() => g.Add(1))).ToArray();
        var results = await Task.WhenAll(calls);
        Assert.Equal(200, await g.Get());                       // no lost update despite the await inside Add
        Assert.Equal(Enumerable.Range(1, 200), results.Order()); // each turn saw the previous one's result

        var slow = cluster.Silos[0].GrainFactory.GetGrain<ISlowGrain>("order");
        var ordered = new List<Task<int>>();
        for (int i = 0; i < 5; i++) ordered.Add(slow.Work(i, 30));
        await Task.WhenAll(ordered);
        Assert.Equal(1, await slow.MaxConcurrency());
    }

    [Fact]
    public async Task Reentrant_grain_interleaves_requests_but_never_runs_two_threads_at_once()
    {
        await using var cluster = new TestCluster();
        await cluster.StartAsync(1);
        var g = cluster.Silos[0].GrainFactory.GetGrain<IReentrantGrain>("r");
        await Task.WhenAll(Enumerable.Range(0, 20).Select(i => Task.Run(() => g.Work(i, 100))));
        Assert.True(await g.MaxConcurrency() > 1, "requests of a [Reentrant] grain should interleave");
    }

    [Fact]
    public async Task AlwaysInterleave_method_runs_while_a_long_request_holds_the_grain()
    {
        await using var cluster = new TestCluster();
        await cluster.StartAsync(1);
        var g = cluster.Silos[0].GrainFactory.GetGrain<ISlowGrain>("peek");
        await g.Work(7, 1);
        var longCall = g.Work(8, 2000);
        var peek = await g.Peek().WaitAsync(TimeSpan.FromSeconds(1.5));
        Assert.Equal(7, peek);
        Assert.False(longCall.IsCompleted);
        Assert.Equal(8, await longCall);
    }

    [Fact]
    public async Task A_call_that_outlives_its_timeout_fails_with_a_timeout_naming_the_call()
    {
        await using var cluster = new TestCluster(configure: b => b.Configure(o => o.RequestTimeout = TimeSpan.FromMilliseconds(300)));
        await cluster.StartAsync(1);
        var g = cluster.Silos[0].GrainFactory.GetGrain<ISlowGrain>("t");
        var perMethod = await Assert.ThrowsAsync<GrainCallTimeoutException>(() => g.SleepShortTimeout(5000));
        Assert.Contains("SleepShortTimeout", perMethod.Message);
        Assert.Contains("200 ms", perMethod.Message); // [ResponseTimeout("00:00:00.200")] beats the silo default
        var byDefault = await Assert.ThrowsAsync<GrainCallTimeoutException>(() => cluster.Silos[0].GrainFactory.GetGrain<ISlowGrain>("t2").Sleep(5000));
        Assert.Contains("300 ms", byDefault.Message);
    }

    [Fact]
    public async Task Filters_wrap_calls_in_order_and_may_replace_the_result()
    {
        var filter = new RecordingFilter();
        await using var cluster = new TestCluster(configure: b => b.AddIncomingFilter(filter).AddOutgoingFilter(filter));
        await cluster.StartAsync(1);
        var g = cluster.Silos[0].GrainFactory.GetGrain<ICounterGrain>("f");
        await g.Add(5);
        Assert.Equal(1005, await g.Get());
        Assert.Equal(
            ["out before Add f", "in before Add f", "in after Add 5", "out after Add 5",
             "out before Get f", "in before Get f", "in after Get 1005", "out after Get 1005"],
            filter.Seen.ToArray());
    }

    [Fact]
    public async Task Grain_exceptions_reach_the_caller_and_the_activation_survives()
    {
        await using var cluster = new TestCluster();
        await cluster.StartAsync(1);
        var g = cluster.Silos[0].GrainFactory.GetGrain<IEchoGrain>("e");
        var e = await Assert.ThrowsAsync<ArgumentException>(() => g.Throw("bad input"));
        Assert.Equal("bad input", e.Message);
        Assert.Equal(3, await g.Sum(1, 1, 1.0));
        await g.Nothing();
    }

    [Fact]
    public async Task Idle_activations_are_collected_and_DeactivateOnIdle_deactivates()
    {
        await using var cluster = new TestCluster(configure: b => b.Configure(o =>
        {
            o.CollectionAge = TimeSpan.FromMilliseconds(300);
            o.CollectionQuantum = TimeSpan.FromMilliseconds(100);
        }));
        await cluster.StartAsync(1);
        var silo = cluster.Silos[0];
        var g = silo.GrainFactory.GetGrain<ICounterGrain>("idle");
        await g.Add(1);
        var id = new GrainId(typeof(ICounterGrain).FullName!, "idle");
        Assert.True(silo.HasActivation(id));
        await WaitUntil(() => !silo.HasActivation(id));
        Assert.Contains("deactivate idle IdleCollection", cluster.Ledger.Events);
        Assert.Equal(1, await g.Add(1)); // a fresh activation: in-memory state is gone
        Assert.Equal(2, cluster.Ledger.Count("idle"));

        var d = silo.GrainFactory.GetGrain<ICounterGrain>("asked");
        await d.Add(1);
        await d.Deactivate();
        await WaitUntil(() => cluster.Ledger.Events.Contains("deactivate asked ApplicationRequested"));
    }

    [Fact]
    public async Task Trace_context_flows_from_caller_into_the_grain_turn_and_onward()
    {
        await using var cluster = new TestCluster();
        await cluster.StartAsync(1);
        using var root = new Activity("test-root").SetIdFormat(ActivityIdFormat.W3C).Start();
        var g = cluster.Silos[0].GrainFactory.GetGrain<ITraceGrain>("tr");
        var parent = await g.ParentOfMyTurn();
        Assert.NotNull(parent);
        Assert.Equal(root.TraceId.ToString(), ActivityTraceId(parent!));
        var nested = await g.TraceIdSeenByCallee("tr2");
        Assert.Equal(root.TraceId.ToString(), ActivityTraceId(nested!));
    }

    internal static string ActivityTraceId(string traceParent) => traceParent.Split('-')[1];

    internal static async Task WaitUntil(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + TestCluster.Patience;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("condition not met within the test patience");
            await Task.Delay(20);
        }
    }
}
