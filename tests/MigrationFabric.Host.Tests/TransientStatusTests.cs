namespace MigrationFabric.Host.Tests;

using System.Reflection;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Grains;
using MigrationFabric.Host.Api;
using MigrationFabric.Host.Errors;
using MigrationFabric.Host.Grains;
using StatusCode = MigrationFabric.Rpc.StatusCode;

/// <summary>A silo's death seen by the scheduler: UNAVAILABLE (or a retried watch) whether this silo or another one reported it, never INTERNAL.</summary>
public sealed class TransientStatusTests
{
    public static TheoryData<Type, StatusCode> RuntimeFailures => new()
    {
        { typeof(SiloUnavailableException), StatusCode.Unavailable },
        { typeof(GrainRoutingException), StatusCode.Unavailable },
        { typeof(GrainCallTimeoutException), StatusCode.DeadlineExceeded },
    };

    [Theory]
    [MemberData(nameof(RuntimeFailures))]
    public void A_runtime_failure_reported_by_another_silo_maps_like_the_local_one(Type type, StatusCode expected)
    {
        var remote = FabricException.ToRpc(new RemoteGrainException(type.FullName!, "silo S1 is not answering", null));
        Assert.Equal(expected, remote.StatusCode);
        Assert.Equal("silo S1 is not answering", remote.Status.Detail);
    }

    [Fact]
    public void Another_silos_own_failure_stays_internal_and_names_its_type()
    {
        var rpc = FabricException.ToRpc(new RemoteGrainException(typeof(InvalidOperationException).FullName!, "broken", null));
        Assert.Equal(StatusCode.Internal, rpc.StatusCode);
        Assert.Contains("System.InvalidOperationException: broken", rpc.Status.Detail);
    }

    [Fact]
    public async Task A_describe_during_a_silo_death_reported_remotely_is_unavailable_through_the_scheduler()
    {
        var grains = new FakeGrains(_ => Task.FromException<Vm>(new RemoteGrainException(typeof(GrainRoutingException).FullName!, "directory partition owner S2 is dead", null)));
        var scheduler = new FabricScheduler(grains, () => throw new InvalidOperationException("no membership needed"));
        var e = await Assert.ThrowsAsync<RemoteGrainException>(() => scheduler.DescribeVmAsync(new DescribeVmRequest { Name = "vm" }));
        var rpc = FabricException.ToRpc(e);
        Assert.Equal(StatusCode.Unavailable, rpc.StatusCode);
        Assert.Contains("S2 is dead", rpc.Status.Detail);
    }

    [Fact]
    public async Task A_watch_keeps_its_stream_through_transient_failures_reported_by_another_silo()
    {
        var answers = new Queue<Func<Task<MigrationEvent>>>(
        [
            () => Task.FromResult(new MigrationEvent { Phase = MigrationPhase.PreCopy }),
            () => Task.FromException<MigrationEvent>(new RemoteGrainException(typeof(GrainRoutingException).FullName!, "routing", null)),
            () => Task.FromException<MigrationEvent>(new RemoteGrainException(typeof(SiloUnavailableException).FullName!, "unavailable", null)),
            () => Task.FromException<MigrationEvent>(new GrainRoutingException("local")),
            () => Task.FromResult(new MigrationEvent { Phase = MigrationPhase.Completed, Final = new Migration { Id = "m", Phase = MigrationPhase.Completed } }),
        ]);
        var grains = new FakeGrains(method => method == nameof(IMigrationSessionGrain.Progress) ? answers.Dequeue()() : throw new InvalidOperationException(method));
        var scheduler = new FabricScheduler(grains, () => throw new InvalidOperationException("no membership needed"));
        var written = new List<MigrationEvent>();
        using var cts = new CancellationTokenSource(TestCluster.Patience);
        await scheduler.WatchMigrationAsync(new WatchMigrationRequest { MigrationId = "m", IntervalMs = 10 }, e => { written.Add(e); return Task.CompletedTask; }, cts.Token);
        Assert.Equal([MigrationPhase.PreCopy, MigrationPhase.Completed], written.Select(e => e.Phase));
        Assert.Empty(answers);
    }

    [Fact]
    public async Task A_watch_stops_on_another_silos_own_failure()
    {
        int calls = 0;
        var grains = new FakeGrains(_ => ++calls == 1
            ? Task.FromResult(new MigrationEvent { Phase = MigrationPhase.PreCopy })
            : Task.FromException<MigrationEvent>(new RemoteGrainException(typeof(InvalidOperationException).FullName!, "broken", null)));
        var scheduler = new FabricScheduler(grains, () => throw new InvalidOperationException("no membership needed"));
        using var cts = new CancellationTokenSource(TestCluster.Patience);
        var e = await Assert.ThrowsAsync<RemoteGrainException>(() =>
            scheduler.WatchMigrationAsync(new WatchMigrationRequest { MigrationId = "m", IntervalMs = 10 }, _ => Task.CompletedTask, cts.Token));
        Assert.Equal(StatusCode.Internal, FabricException.ToRpc(e).StatusCode);
        Assert.Equal(2, calls);
    }

    /// <summary>Every grain of every interface answers each call with <c>answer(method name)</c>.</summary>
    private sealed class FakeGrains(Func<string, object> answer) : IGrainFactory
    {
        public TGrainInterface GetGrain<TGrainInterface>(string key) where TGrainInterface : IGrainWithStringKey
        {
            var proxy = DispatchProxy.Create<TGrainInterface, Answering>();
            ((Answering)(object)proxy).Answer = answer;
            return proxy;
        }
    }

    /// <summary>The proxy behind <see cref="FakeGrains"/>.</summary>
    public class Answering : DispatchProxy
    {
        internal Func<string, object> Answer { get; set; } = m => throw new InvalidOperationException(m);

        protected override object? Invoke(MethodInfo? targetMethod, object?[]? args) => Answer(targetMethod!.Name);
    }
}
