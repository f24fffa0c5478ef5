namespace MigrationFabric.Host.Agent;

using MigrationFabric.Grains;
using MigrationFabric.Grains.Membership;
using MigrationFabric.Grains.Messaging;
using MigrationFabric.Grains.Runtime;
using MigrationFabric.Grains.Storage;
using MigrationFabric.Host.Api;
using MigrationFabric.Host.Balancing;
using MigrationFabric.Host.Grains;
using MigrationFabric.Host.Hypervisor;
using MigrationFabric.Host.Migrations;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.DataPlane.Tcp;
using MigrationFabric.Rpc.Server;

/// <summary>The host agent of one hypervisor host: a silo (HostGrain, VmGrain, MigrationSessionGrain) and one gRPC endpoint serving the scheduler API and the data plane.</summary>
public sealed class HostAgent : IAsyncDisposable
{
    private readonly HostAgentOptions _options;
    private readonly IMembershipTable _table;
    private readonly IGrainStorage _storage;
    private readonly MembershipOptions? _membershipOptions;
    private readonly HostAgentContext _context;
    private Silo? _silo;
    private RpcServer? _server;
    private int _state; // 0 new, 1 started, 2 stopped
    private PeriodicRebalance? _rebalance;
    private readonly bool _ownsDataDirectory;

    /// <summary>An agent joining the cluster of <paramref name="table"/>, keeping grain state in <paramref name="storage"/>.</summary>
    public HostAgent(HostAgentOptions options, IMembershipTable table, IGrainStorage storage, MembershipOptions? membershipOptions = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _table = table;
        _storage = storage;
        _membershipOptions = membershipOptions;
        _ownsDataDirectory = options.DataDirectory is null;
        string dataDirectory = options.DataDirectory ?? Path.Combine(Path.GetTempPath(), $"mf-agent-{options.HostName}-{Guid.NewGuid():N}");
        _context = new HostAgentContext(options.HostName, new LocalHypervisor(options.HostName, options.MemoryBudgetBytes), new PagesService(), dataDirectory) { DataChannel = options.DataChannel, PreallocateIncoming = options.PreallocateIncomingMemory };
        _context.Coordinator = new MigrationCoordinator(_context, () => Silo.GrainFactory) { Recovery = new RecoveryWatchOptions { Window = options.RecoveryWindow } };
    }

    /// <summary>The host's name.</summary>
    public string HostName => _options.HostName;

    /// <summary>The scheduler API and data-plane endpoint, e.g. http://127.0.0.1:7001 (after start).</summary>
    public Uri Endpoint => _server?.Address is { } a ? new Uri(_context.Endpoint) : throw new InvalidOperationException("the host agent is not started.");

    /// <summary>This host's VMs and budget.</summary>
    public LocalHypervisor Hypervisor => _context.Hypervisor;

    internal HostAgentContext Context => _context;

    /// <summary>This host's data plane (the Pages service and its data-channel listener).</summary>
    public PagesService Pages => _context.Pages;

    /// <summary>Directory of the agent's files (private swap files).</summary>
    public string DataDirectory => _context.DataDirectory;

    /// <summary>Parts of VMs this host holds for others (split sub-host, scatter-gather intermediate).</summary>
    public HeldParts Held => _context.Held;

    /// <summary>The agent's silo (after start).</summary>
    public Silo Silo => _silo ?? throw new InvalidOperationException("the host agent is not started.");

    /// <summary>Joins the cluster, then serves the API and data plane.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.CompareExchange(ref _state, 1, 0) != 0) throw new InvalidOperationException("a host agent can be started once.");
        Directory.CreateDirectory(_context.DataDirectory);
        var silo = new SiloBuilder()
            .UseTransport(new RpcSiloTransport(new RpcSiloTransportOptions { ListenAddress = _options.ListenAddress, Port = _options.SiloPort }))
            .UseMembershipTable(_table, _membershipOptions)
            .AddGrainStorage(SiloBuilder.DefaultStorageName, _storage)
            .AddPlacementDirector(VmPlacement.Name, VmPlacement.Director)
            .AddService(_context)
            .AddGrain<IHostGrain, HostGrain>(_ => new HostGrain())
            .AddGrain<IVmGrain, VmGrain>(ctx => new VmGrain(ctx.GetPersistentState<VmRecord>("vm")))
            .AddGrain<IRegistryGrain, RegistryGrain>(ctx => new RegistryGrain(ctx.GetPersistentState<RegistryState>("registry")))
            .AddGrain<IMigrationSessionGrain, MigrationSessionGrain>(ctx => new MigrationSessionGrain(ctx.GetPersistentState<MigrationSessionState>("migration")))
            .Configure(o =>
            {
                o.SiloName = _options.HostName;
                o.Host = _options.AdvertisedHost;
                o.RequestTimeout = _options.RequestTimeout;
            })
            .Build();
        await silo.StartAsync(cancellationToken).ConfigureAwait(false);
        _silo = silo;
        var server = new RpcServer(new RpcServerOptions
        {
            ListenAddress = _options.ListenAddress,
            Port = _options.ApiPort,
            MaxReceiveMessageSize = _options.MaxReceiveMessageSize,
        });
        server.AddService(_context.Pages.Definition);
        server.AddService(FabricService.Create(new FabricScheduler(silo.GrainFactory, () => silo.Membership.Current)));
        await server.StartAsync(cancellationToken).ConfigureAwait(false);
        _server = server;
        // Every agent can be a destination: its data channels listen on the gRPC endpoint's address.
        _context.Pages.StartDataChannels(new DataChannelListenerOptions
        {
            Address = _options.ListenAddress, Port = _options.DataChannelPort, MaxMessageSize = _options.MaxReceiveMessageSize,
        });
        _context.Endpoint = $"http://{_options.AdvertisedHost}:{server.Port}";
        if (_options.RebalanceInterval is { } every) _rebalance = new PeriodicRebalance(_context.Hypervisor, every);
    }

    /// <summary>Leaves the cluster in order: running migrations are cancelled (VMs stay here), VMs stop, then the endpoint closes.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _state, 2) != 1) return;
        await _context.Coordinator.DisposeAsync().ConfigureAwait(false);
        if (_silo is not null) await _silo.StopAsync(cancellationToken).ConfigureAwait(false);
        if (_server is not null) await _server.StopAsync(cancellationToken).ConfigureAwait(false);
        await _context.Pages.StopDataChannelsAsync().ConfigureAwait(false);
        if (_rebalance is not null) await _rebalance.DisposeAsync().ConfigureAwait(false);
        await _context.Held.DisposeAsync().ConfigureAwait(false);
        await _context.Hypervisor.DisposeAsync().ConfigureAwait(false);
        _context.Attachments.DetachAll();
        if (_server is not null) await _server.DisposeAsync().ConfigureAwait(false);
        RemoveDataDirectory();
    }

    /// <summary>Stops abruptly, as a crashed host looks to the others: no goodbye, connections dropped, VMs gone.</summary>
    public async Task KillAsync()
    {
        if (Interlocked.Exchange(ref _state, 2) != 1) return;
        if (_server is not null) await _server.DisposeAsync().ConfigureAwait(false);
        await _context.Pages.StopDataChannelsAsync().ConfigureAwait(false);
        if (_silo is not null) await _silo.AbortAsync().ConfigureAwait(false);
        if (_rebalance is not null) await _rebalance.DisposeAsync().ConfigureAwait(false);
        await _context.Coordinator.DisposeAsync().ConfigureAwait(false);
        await _context.Held.DisposeAsync().ConfigureAwait(false);
        await _context.Hypervisor.DisposeAsync().ConfigureAwait(false);
        _context.Attachments.DetachAll();
        RemoveDataDirectory();
    }

    private void RemoveDataDirectory()
    {
        if (!_ownsDataDirectory) return;
        try
        {
            Directory.Delete(_context.DataDirectory, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A temporary directory left behind is litter, not a failure to stop.
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync() => await StopAsync(CancellationToken.None).ConfigureAwait(false);
}
