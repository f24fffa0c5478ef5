namespace MigrationFabric.Host.Tests;

using Google.Protobuf;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Grains.Membership;
using MigrationFabric.Host.Agent;
using MigrationFabric.Host.Api;
using MigrationFabric.Rpc;
using MigrationFabric.Rpc.Client;
using Migration = MigrationFabric.Contracts.V1.Migration;

/// <summary>Three real host agents on loopback (each a gRPC endpoint and a silo), and a scheduler channel to the first.</summary>
public class TestCluster : IAsyncLifetime
{
    /// <summary>Generous wait for anything event-driven.</summary>
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(90);

    /// <summary>Budget per host: room for a few small VMs, little enough to test admission.</summary>
    public const long Budget = 512L << 20;

    public EmbeddedCluster Cluster { get; private set; } = null!;
    public RpcChannel Channel { get; private set; } = null!;

    protected virtual MembershipOptions? Membership => null;

    /// <summary>The cluster to start: 3 hosts of <see cref="Budget"/> unless a fixture says otherwise.</summary>
    protected virtual EmbeddedClusterOptions ClusterOptions() => new() { Hosts = 3, MemoryBudgetBytes = Budget, Membership = Membership };

    public async Task InitializeAsync()
    {
        using var cts = new CancellationTokenSource(Patience);
        Cluster = await EmbeddedCluster.StartAsync(ClusterOptions(), cts.Token);
        Channel = new RpcChannel(Cluster.Endpoint, new RpcChannelOptions());
    }

    public async Task DisposeAsync()
    {
        Channel.Dispose();
        await Cluster.DisposeAsync();
    }

    /// <summary>A unary scheduler call with a deadline.</summary>
    public Task<TResponse> Call<TRequest, TResponse>(Method<TRequest, TResponse> method, TRequest request)
        where TRequest : class, IMessage<TRequest>, new() where TResponse : class, IMessage<TResponse>, new() =>
        Channel.AsyncUnaryCall(method, request, new CallOptions(Deadline: DateTime.UtcNow + Patience)).ResponseAsync;

    /// <summary>The status a call fails with (fails the test if it succeeds).</summary>
    public async Task<RpcException> Fails<TRequest, TResponse>(Method<TRequest, TResponse> method, TRequest request)
        where TRequest : class, IMessage<TRequest>, new() where TResponse : class, IMessage<TResponse>, new() =>
        await Assert.ThrowsAsync<RpcException>(() => Call(method, request));

    public Task<Vm> CreateVm(string name, string host, ulong bytes, Workload workload) =>
        Call(FabricContract.CreateVm, new CreateVmRequest { Name = name, Host = host, MemoryBytes = bytes, Workload = workload });

    /// <summary>Every event of a migration until its final one; returns them.</summary>
    public async Task<List<MigrationEvent>> Watch(string id)
    {
        var until = DateTime.UtcNow + Patience;
        while (true)
        {
            try
            {
                return await WatchOnce(id);
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Unavailable && DateTime.UtcNow < until)
            {
                // A silo of the cluster died and is not yet declared dead: as a scheduler would, try again.
                await Task.Delay(200);
            }
        }
    }

    private async Task<List<MigrationEvent>> WatchOnce(string id)
    {
        var events = new List<MigrationEvent>();
        using var cts = new CancellationTokenSource(Patience);
        using var call = Channel.AsyncServerStreamingCall(FabricContract.WatchMigration, new WatchMigrationRequest { MigrationId = id, IntervalMs = 50 },
            new CallOptions(CancellationToken: cts.Token));
        await foreach (var e in call.ResponseStream.ReadAllAsync(cts.Token))
        {
            events.Add(e);
            if (e.Final is not null) break;
        }
        Assert.NotNull(events[^1].Final);
        return events;
    }

    /// <summary>Waits (on WatchMigration events) until the migration reports <paramref name="phase"/> or later.</summary>
    public async Task WaitForPhase(string id, MigrationPhase phase)
    {
        using var cts = new CancellationTokenSource(Patience);
        using var call = Channel.AsyncServerStreamingCall(FabricContract.WatchMigration, new WatchMigrationRequest { MigrationId = id, IntervalMs = 20 },
            new CallOptions(CancellationToken: cts.Token));
        await foreach (var e in call.ResponseStream.ReadAllAsync(cts.Token))
            if (e.Phase >= phase || e.Final is not null) return;
    }

    /// <summary>Waits until the VM's workload has counted <paramref name="operations"/> (bytes, pages or ops), i.e. its guest really runs.</summary>
    public async Task WarmUp(string host, string vm, long operations)
    {
        var local = Cluster.Agent(host).Hypervisor.Find(vm) ?? throw new InvalidOperationException($"{vm} is not on {host}");
        var until = DateTime.UtcNow + Patience;
        while (local.Workload is null || local.Workload.TotalOperations < operations)
        {
            Assert.True(DateTime.UtcNow < until, $"{vm} did not run {operations} operations within the patience");
            await Task.Delay(10);
        }
    }

    public Task<Migration> Start(string vm, string destination, Strategy strategy, MigrationLimits? limits = null, params string[] subHosts) =>
        Call(FabricContract.StartMigration, new StartMigrationRequest { Vm = vm, Destination = destination, Strategy = strategy, Limits = limits, SubHosts = { subHosts } });
}

/// <summary>A cluster whose membership notices a dead host within a few seconds.</summary>
public sealed class FastLivenessCluster : TestCluster
{
    protected override MembershipOptions? Membership => EmbeddedCluster.FastMembership();
}
