using MigrationFabric.Grains.Filters;
using MigrationFabric.Grains.Membership;
using MigrationFabric.Grains.Messaging;
using MigrationFabric.Grains.Runtime;
using MigrationFabric.Grains.Storage;

namespace MigrationFabric.Grains.Tests.Runtime;

/// <summary>N real silos in this process sharing one membership table and one grain storage.</summary>
public sealed class TestCluster : IAsyncDisposable
{
    private readonly Func<ISiloTransport> _transport;
    private readonly Action<SiloBuilder>? _configure;

    public TestCluster(Func<ISiloTransport>? transport = null, Action<SiloBuilder>? configure = null)
    {
        var network = new InProcessSiloNetwork();
        Network = network;
        _transport = transport ?? network.CreateTransport;
        _configure = configure;
    }

    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    public InProcessSiloNetwork Network { get; }
    public InMemoryMembershipTable Table { get; } = new();
    public InMemoryGrainStorage Storage { get; } = new();
    public ActivationLedger Ledger { get; } = new();
    public List<Silo> Silos { get; } = [];

    /// <summary>Fast liveness so a dead silo is declared within a couple of seconds.</summary>
    public static MembershipOptions FastMembership() => new()
    {
        ProbeTimeout = TimeSpan.FromSeconds(1),
        NumMissedProbesLimit = 3,
        NumVotesForDeathDeclaration = 1,
        IAmAlivePublishPeriod = TimeSpan.FromSeconds(1),
        TableVersionPollPeriod = TimeSpan.FromMilliseconds(100),
        TableRefreshTimeout = TimeSpan.FromSeconds(2),
    };

    public SiloBuilder NewBuilder(string? name = null)
    {
        var b = new SiloBuilder()
            .UseTransport(_transport())
            .UseMembershipTable(Table, FastMembership())
            .AddGrainStorage(SiloBuilder.DefaultStorageName, Storage)
            .AddGrain<ICounterGrain, CounterGrain>(_ => new CounterGrain(Ledger))
            .AddGrain<IPersistentCounterGrain, PersistentCounterGrain>(ctx => new PersistentCounterGrain(ctx.GetPersistentState<CounterState>("counter")))
            .AddGrain<ISlowGrain, SlowGrain>(_ => new SlowGrain())
            .AddGrain<IReentrantGrain, ReentrantGrain>(_ => new ReentrantGrain())
            .AddGrain<ITraceGrain, TraceGrain>(_ => new TraceGrain())
            .AddGrain<IEchoGrain, EchoGrain>(_ => new EchoGrain())
            .AddGrain<IPreferLocalGrain, PreferLocalGrain>(_ => new PreferLocalGrain(Ledger))
            .AddGrain<IHostGrain, HostGrain>(_ => new HostGrain())
            .AddGrain<ICallerGrain, CallerGrain>(_ => new CallerGrain())
            .AddGrain<IMovableGrain, MovableGrain>(_ => new MovableGrain())
            .Configure(o => { o.SiloName = name; o.DirectoryRecoveryTimeout = TimeSpan.FromSeconds(3); });
        _configure?.Invoke(b);
        return b;
    }

    public async Task<Silo> StartSiloAsync(string? name = null, Action<SiloBuilder>? configure = null)
    {
        var b = NewBuilder(name);
        configure?.Invoke(b);
        var silo = b.Build();
        using var cts = new CancellationTokenSource(Patience);
        await silo.StartAsync(cts.Token);
        Silos.Add(silo);
        return silo;
    }

    public async Task StartAsync(int count)
    {
        for (int i = 0; i < count; i++)
            await StartSiloAsync($"silo{i}");
        await WaitForViewAsync();
    }

    /// <summary>Waits until every running silo sees all running silos active.</summary>
    public async Task WaitForViewAsync()
    {
        using var cts = new CancellationTokenSource(Patience);
        foreach (var s in Silos)
            await s.WaitForActiveSilosAsync(Silos.Count, cts.Token);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var s in Silos)
        {
            try { await s.StopAsync(CancellationToken.None); } catch (ObjectDisposedException) { }
        }
    }
}

/// <summary>Records what filters saw.</summary>
public sealed class RecordingFilter : IIncomingGrainCallFilter, IOutgoingGrainCallFilter
{
    public System.Collections.Concurrent.ConcurrentQueue<string> Seen { get; } = new();

    Task IIncomingGrainCallFilter.Invoke(IIncomingGrainCallContext context) => Run("in", context);

    Task IOutgoingGrainCallFilter.Invoke(IOutgoingGrainCallContext context) => Run("out", context);

    private async Task Run(string direction, IGrainCallContext context)
    {
        Seen.Enqueue($"{direction} before {context.MethodName} {context.TargetId.Key}");
        await context.Invoke();
        if (context.MethodName == "Get" && direction == "in") context.Result = (int)context.Result! + 1000;
        Seen.Enqueue($"{direction} after {context.MethodName} {context.Result}");
    }
}
