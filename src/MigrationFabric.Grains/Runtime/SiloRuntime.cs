using MigrationFabric.Grains.Activation;
using MigrationFabric.Grains.GrainDirectory;
using MigrationFabric.Grains.Filters;
using MigrationFabric.Grains.Invocation;
using MigrationFabric.Grains.Membership;
using MigrationFabric.Grains.Messaging;
using MigrationFabric.Grains.Storage;

namespace MigrationFabric.Grains.Runtime;

/// <summary>The pieces of one running silo and the links between them (catalog, locator, router, messenger).</summary>
internal sealed class SiloRuntime
{
    private readonly IReadOnlyDictionary<string, GrainTypeRegistration> _types;
    private readonly IReadOnlyDictionary<string, IGrainStorage> _storages;
    private readonly CancellationTokenSource _stopping = new();
    private volatile bool _isStopping;

    public SiloRuntime(SiloAddress self, SiloOptions options, TimeProvider time, SiloLog log, GrainInterfaceRegistry interfaces,
        IReadOnlyDictionary<string, GrainTypeRegistration> types, IReadOnlyDictionary<string, IGrainStorage> storages,
        IReadOnlyList<IIncomingGrainCallFilter> incoming, IReadOnlyList<IOutgoingGrainCallFilter> outgoing,
        IServiceProvider services, ISiloTransport transport)
    {
        Self = self;
        Options = options;
        Time = time;
        Log = log;
        Interfaces = interfaces;
        _types = types;
        _storages = storages;
        IncomingFilters = incoming;
        OutgoingFilters = outgoing;
        Services = services;
        TurnScheduler = options.FairTurnScheduling ? new FairThreadPoolScheduler() : TaskScheduler.Default;
        Router = new GrainCallRouter(this);
        GrainFactory = new GrainFactory(interfaces, Router);
        Catalog = new Catalog(this);
        Messenger = new SiloMessenger(this, transport);
        Locator = new GrainLocator(this);
    }

    public SiloAddress Self { get; }
    public SiloOptions Options { get; }
    public TimeProvider Time { get; }
    public SiloLog Log { get; }
    public GrainTracing Tracing { get; } = new();
    public TaskScheduler TurnScheduler { get; }
    public GrainInterfaceRegistry Interfaces { get; }
    public IReadOnlyList<IIncomingGrainCallFilter> IncomingFilters { get; }
    public IReadOnlyList<IOutgoingGrainCallFilter> OutgoingFilters { get; }
    public IServiceProvider Services { get; }
    public GrainCallRouter Router { get; }
    public IGrainFactory GrainFactory { get; }
    public Catalog Catalog { get; }
    public SiloMessenger Messenger { get; }
    public GrainLocator Locator { get; }
    public IClusterMembership Membership { get; set; } = null!;
    public CancellationToken StoppingToken => _stopping.Token;
    public bool IsStopping => _isStopping;

    public void BeginStopping() => _isStopping = true;

    public void CancelStopping() => _stopping.Cancel();

    public GrainTypeRegistration GetGrainType(GrainInterfaceDescriptor descriptor) =>
        _types.TryGetValue(descriptor.Name, out var t) ? t
            : throw new GrainRoutingException($"No grain class is registered for interface {descriptor.Name} on silo {Self} (SiloBuilder.AddGrain).");

    public IGrainStorage GetStorage(string name) =>
        _storages.TryGetValue(name, out var s) ? s
            : throw new InvalidOperationException($"No grain storage named '{name}' is registered on silo {Self} (SiloBuilder.AddGrainStorage).");
}
