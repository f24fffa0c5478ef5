using Microsoft.Extensions.Logging;
using MigrationFabric.Grains.Activation;
using MigrationFabric.Grains.Filters;
using MigrationFabric.Grains.Invocation;
using MigrationFabric.Grains.Membership;
using MigrationFabric.Grains.Messaging;
using MigrationFabric.Grains.Placement;
using MigrationFabric.Grains.Storage;

namespace MigrationFabric.Grains.Runtime;

/// <summary>Configures a silo: grain types, storage, filters, placement directors, transport and membership table.</summary>
public sealed class SiloBuilder
{
    /// <summary>The storage name <see cref="IGrainContext.GetPersistentState{T}"/> uses by default.</summary>
    public const string DefaultStorageName = "Default";

    private readonly List<(Type Interface, Type Class, Func<IGrainContext, Grain> Factory)> _grains = [];
    private readonly Dictionary<string, IGrainStorage> _storages = new(StringComparer.Ordinal);
    private readonly Dictionary<string, IPlacementDirector> _directors = new(StringComparer.Ordinal);
    private readonly Dictionary<Type, object> _services = new();
    private readonly List<IIncomingGrainCallFilter> _incoming = [];
    private readonly List<IOutgoingGrainCallFilter> _outgoing = [];
    private ISiloTransport? _transport;
    private IMembershipTable? _table;
    private MembershipOptions? _membershipOptions;
    private TimeProvider _time = TimeProvider.System;
    private ILoggerFactory? _loggerFactory;

    /// <summary>The runtime options (validated at <see cref="Build"/>).</summary>
    public SiloOptions Options { get; } = new();

    /// <summary>Edits <see cref="Options"/>.</summary>
    public SiloBuilder Configure(Action<SiloOptions> configure)
    {
        configure(Options);
        return this;
    }

    /// <summary>Serves <typeparamref name="TInterface"/> with <typeparamref name="TGrain"/> built by <paramref name="factory"/>.</summary>
    public SiloBuilder AddGrain<TInterface, TGrain>(Func<IGrainContext, TGrain> factory)
        where TInterface : IGrainWithStringKey
        where TGrain : Grain, TInterface
    {
        ArgumentNullException.ThrowIfNull(factory);
        _grains.Add((typeof(TInterface), typeof(TGrain), ctx => factory(ctx)));
        return this;
    }

    /// <summary>Adds a grain storage under <paramref name="name"/>.</summary>
    public SiloBuilder AddGrainStorage(string name, IGrainStorage storage)
    {
        _storages[name] = storage;
        return this;
    }

    /// <summary>Adds a placement director that grain classes name with [PlacementDirector(name)].</summary>
    public SiloBuilder AddPlacementDirector(string name, IPlacementDirector director)
    {
        _directors[name] = director;
        return this;
    }

    /// <summary>Adds an incoming call filter (runs in the target activation's turn, in order of addition).</summary>
    public SiloBuilder AddIncomingFilter(IIncomingGrainCallFilter filter)
    {
        _incoming.Add(filter);
        return this;
    }

    /// <summary>Adds an outgoing call filter (runs on the caller, in order of addition).</summary>
    public SiloBuilder AddOutgoingFilter(IOutgoingGrainCallFilter filter)
    {
        _outgoing.Add(filter);
        return this;
    }

    /// <summary>Makes <paramref name="service"/> available to grains through <see cref="IGrainContext.Services"/>.</summary>
    public SiloBuilder AddService<T>(T service) where T : class
    {
        _services[typeof(T)] = service;
        return this;
    }

    /// <summary>The transport between silos (in-process or Rpc); required.</summary>
    public SiloBuilder UseTransport(ISiloTransport transport)
    {
        _transport = transport;
        return this;
    }

    /// <summary>The membership table this silo joins; required.</summary>
    public SiloBuilder UseMembershipTable(IMembershipTable table, MembershipOptions? options = null)
    {
        _table = table;
        _membershipOptions = options;
        return this;
    }

    /// <summary>The clock of timeouts, idle collection and membership (tests drive it).</summary>
    public SiloBuilder UseTimeProvider(TimeProvider time)
    {
        _time = time;
        return this;
    }

    /// <summary>Where logs go (default: nowhere).</summary>
    public SiloBuilder UseLogging(ILoggerFactory loggerFactory)
    {
        _loggerFactory = loggerFactory;
        return this;
    }

    /// <summary>Validates and builds the silo (not started).</summary>
    public Silo Build()
    {
        Options.Validate();
        if (_transport is null) throw new InvalidOperationException("SiloBuilder: a transport is required (UseTransport).");
        if (_table is null) throw new InvalidOperationException("SiloBuilder: a membership table is required (UseMembershipTable).");
        var interfaces = new GrainInterfaceRegistry();
        var types = new Dictionary<string, GrainTypeRegistration>(StringComparer.Ordinal);
        foreach (var (iface, cls, factory) in _grains)
        {
            var descriptor = interfaces.Get(iface);
            var attr = (PlacementAttribute?)Attribute.GetCustomAttribute(cls, typeof(PlacementAttribute), inherit: true);
            var placement = attr?.Resolve(_directors) ?? new HashBasedPlacementDirector();
            if (!types.TryAdd(descriptor.Name, new GrainTypeRegistration(descriptor, cls, factory, placement)))
                throw new InvalidOperationException($"SiloBuilder: interface {descriptor.Name} is registered twice (AddGrain).");
        }
        return new Silo(Options, _transport, _table, _membershipOptions, _time, _loggerFactory, interfaces, types,
            new Dictionary<string, IGrainStorage>(_storages), [.. _incoming], [.. _outgoing], new ServiceBag(new Dictionary<Type, object>(_services)));
    }

    private sealed class ServiceBag(Dictionary<Type, object> services) : IServiceProvider
    {
        public object? GetService(Type serviceType) => services.TryGetValue(serviceType, out var s) ? s : null;
    }
}
