using System.Collections.Concurrent;
using System.Diagnostics;
using MigrationFabric.Grains.Runtime;
using Xunit;

namespace MigrationFabric.Grains.Tests.Runtime;

public sealed class LifecycleTests
{
    [Fact]
    public async Task A_silo_leaving_gracefully_deactivates_its_grains_and_they_continue_elsewhere_from_storage()
    {
        await using var cluster = new TestCluster();
        await cluster.StartAsync(3);
        var leaving = cluster.Silos[1];
        var caller = cluster.Silos[0];
        var keys = new List<string>();
        for (int i = 0; keys.Count < 3 && i < 200; i++)
        {
            var g = caller.GrainFactory.GetGrain<IPersistentCounterGrain>($"leave{i}");
            await g.Add(2);
            if (await g.WhereAmI() == leaving.Address.ToString()) keys.Add($"leave{i}");
        }
        Assert.Equal(3, keys.Count);

        await leaving.StopAsync(CancellationToken.None);
        cluster.Silos.Remove(leaving);
        Assert.Equal(0, leaving.ActivationCount);
        using var cts = new CancellationTokenSource(TestCluster.Patience);
        await caller.Membership.WaitForAsync(v => !v.IsActive(leaving.Address), cts.Token);
        foreach (var key in keys)
        {
            var g = caller.GrainFactory.GetGrain<IPersistentCounterGrain>(key);
            Assert.Equal(3, await InProcessMultiSiloTests.RetryWhileUnavailable(() => g.Add(1))); // no fail-fast window: it said goodbye
            Assert.NotEqual(leaving.Address.ToString(), await g.WhereAmI());
        }
    }

    [Fact]
    public async Task With_a_listener_each_call_is_a_client_span_parenting_a_server_span_of_the_same_trace()
    {
        var spans = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == "MigrationFabric.Grains",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);
        await using var cluster = new TestCluster(() => new Messaging.RpcSiloTransport());
        await cluster.StartAsync(2);
        using var root = new Activity("root").SetIdFormat(ActivityIdFormat.W3C).Start();
        await cluster.Silos[0].GrainFactory.GetGrain<ITraceGrain>("spans").TraceIdSeenByCallee("spans-callee");
        root.Stop();

        var mine = spans.Where(s => s.TraceId == root.TraceId).ToList();
        var client = mine.Single(s => s.Kind == ActivityKind.Client && s.DisplayName.EndsWith("ITraceGrain.TraceIdSeenByCallee", StringComparison.Ordinal));
        var server = mine.Single(s => s.Kind == ActivityKind.Server && s.DisplayName.EndsWith("ITraceGrain.TraceIdSeenByCallee", StringComparison.Ordinal));
        Assert.Equal(root.SpanId, client.ParentSpanId);
        Assert.Equal(client.SpanId, server.ParentSpanId);
        var nestedClient = mine.Single(s => s.Kind == ActivityKind.Client && s.DisplayName.EndsWith("ITraceGrain.ParentOfMyTurn", StringComparison.Ordinal));
        var nestedServer = mine.Single(s => s.Kind == ActivityKind.Server && s.DisplayName.EndsWith("ITraceGrain.ParentOfMyTurn", StringComparison.Ordinal));
        Assert.Equal(server.SpanId, nestedClient.ParentSpanId); // a call made inside a turn is a child of that turn's span
        Assert.Equal(nestedClient.SpanId, nestedServer.ParentSpanId);
    }
}
