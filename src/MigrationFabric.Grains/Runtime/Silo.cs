using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using MigrationFabric.Grains.Activation;
using MigrationFabric.Grains.Filters;
using MigrationFabric.Grains.Invocation;
using MigrationFabric.Grains.Membership;
using MigrationFabric.Grains.Messaging;
using MigrationFabric.Grains.Storage;

namespace MigrationFabric.Grains.Runtime;

/// <summary>A silo: hosts activations, owns a slice of the grain directory, joins membership, talks to other silos.</summary>
public sealed class Silo : IAsyncDisposable
{
    private readonly SiloOptions _options;
    private readonly ISiloTransport _transport;
    private readonly IMembershipTable _table;
    private readonly MembershipOptions? _membershipOptions;
    private readonly TimeProvider _time;
    private readonly ILoggerFactory _loggerFactory;
    private readonly GrainInterfaceRegistry _interfaces;
    private readonly IReadOnlyDictionary<string, GrainTypeRegistration> _types;
    private readonly IReadOnlyDictionary<string, IGrainStorage> _storages;
    private readonly IReadOnlyList<IIncomingGrainCallFilter> _incoming;
    private readonly IReadOnlyList<IOutgoingGrainCallFilter> _outgoing;
    private readonly IServiceProvider _services;
    private readonly HandlerSlot _handler = new();
    private SiloRuntime? _runtime;
    private MembershipService? _membership;
    private Task? _collector;
    private int _state; // 0 new, 1 started, 2 stopped

    internal Silo(SiloOptions options, ISiloTransport transport, IMembershipTable table, MembershipOptions? membershipOptions,
        TimeProvider time, ILoggerFactory? loggerFactory, GrainInterfaceRegistry interfaces,
        IReadOnlyDictionary<string, GrainTypeRegistration> types, IReadOnlyDictionary<string, IGrainStorage> storages,
        IReadOnlyList<IIncomingGrainCallFilter> incoming, IReadOnlyList<IOutgoingGrainCallFilter> outgoing, IServiceProvider services)
    {
        _options = options;
        _transport = transport;
        _table = table;
        _membershipOptions = membershipOptions;
        _time = time;
        _loggerFactory = loggerFactory ?? NullLoggerFactory.Instance;
        _interfaces = interfaces;
        _types = types;
        _storages = storages;
        _incoming = incoming;
        _outgoing = outgoing;
        _services = services;
    }

    /// <summary>This silo's identity (after <see cref="StartAsync"/>).</summary>
    public SiloAddress Address => Runtime.Self;

    /// <summary>Makes grain references whose calls start at this silo.</summary>
    public IGrainFactory GrainFactory => Runtime.GrainFactory;

    /// <summary>This silo's membership agent.</summary>
    public IClusterMembership Membership => _membership ?? throw NotStarted();

    /// <summary>Number of activations on this silo.</summary>
    public int ActivationCount => Runtime.Catalog.Count;

    /// <summary>True when this silo has an activation of <paramref name="id"/>.</summary>
    public bool HasActivation(GrainId id) => Runtime.Catalog.Find(id) is not null;

    /// <summary>Number of directory entries this silo owns.</summary>
    public int DirectoryPartitionCount => Runtime.Locator.Partition.Count;

    /// <summary>The current ring version (the membership version it was built from).</summary>
    public long RingVersion => Runtime.Locator.Ring.Version;

    private SiloRuntime Runtime => _runtime ?? throw NotStarted();

    /// <summary>Binds the transport, joins membership as Joining, then becomes Active.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.CompareExchange(ref _state, 1, 0) != 0)
            throw new InvalidOperationException("A silo can be started once.");
        foreach (var storage in _storages.Values)
            await storage.InitializeAsync(cancellationToken).ConfigureAwait(false);
        int port = await _transport.StartAsync(_handler, cancellationToken).ConfigureAwait(false);
        var self = SiloAddress.NewGeneration(_options.Host, port, _time);
        var log = new SiloLog(_loggerFactory.CreateLogger("MigrationFabric.Grains.Silo"));
        var runtime = new SiloRuntime(self, _options, _time, log, _interfaces, _types, _storages, _incoming, _outgoing, _services, _transport);
        _runtime = runtime;
        _handler.Target = runtime.Messenger;
        var membership = new MembershipService(self, _table, new MessengerProbe(runtime.Messenger), _membershipOptions, _time,
            _loggerFactory.CreateLogger<MembershipService>(), _options.SiloName);
        runtime.Membership = membership;
        _membership = membership;
        membership.Changed += OnViewChanged;
        membership.SelfDeclaredDead += dead => _ = StopAfterDeathAsync();
        await membership.StartAsync(cancellationToken).ConfigureAwait(false);
        await membership.BecomeActiveAsync(cancellationToken).ConfigureAwait(false);
        OnViewChanged(membership.Current);
        _collector = Task.Run(() => CollectLoopAsync(runtime), CancellationToken.None);
    }

    /// <summary>Waits until this silo's view has at least <paramref name="count"/> active silos, itself included.</summary>
    public async Task WaitForActiveSilosAsync(int count, CancellationToken cancellationToken)
    {
        var view = await Membership.WaitForAsync(v => v.ActiveSilos.Count >= count && v.IsActive(Address), cancellationToken).ConfigureAwait(false);
        OnViewChanged(view);
    }

    /// <summary>Leaves gracefully: ShuttingDown, deactivates every activation, writes Dead, closes the transport.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _state, 2) != 1) return;
        var runtime = Runtime;
        runtime.BeginStopping();
        try
        {
            await _membership!.BeginShutdownAsync(cancellationToken).ConfigureAwait(false);
            await runtime.Catalog.DeactivateAllAsync(_options.DeactivationTimeout).ConfigureAwait(false);
            await _membership.ShutdownAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (SiloDeclaredDeadException)
        {
            // The others already declared this silo dead: its grains live elsewhere now, nothing left to hand over.
        }
        finally
        {
            runtime.CancelStopping();
            await _membership!.DisposeAsync().ConfigureAwait(false);
            await _transport.DisposeAsync().ConfigureAwait(false);
            if (_collector is not null) await _collector.ConfigureAwait(false);
        }
    }

    /// <summary>Stops without a goodbye (no table write, no deactivation): what a crash looks like to the others.</summary>
    public async Task AbortAsync()
    {
        if (Interlocked.Exchange(ref _state, 2) != 1) return;
        var runtime = Runtime;
        runtime.BeginStopping();
        runtime.CancelStopping();
        await _membership!.DisposeAsync().ConfigureAwait(false);
        await _transport.DisposeAsync().ConfigureAwait(false);
        if (_collector is not null) await _collector.ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (Volatile.Read(ref _state) == 1)
            await StopAsync(CancellationToken.None).ConfigureAwait(false);
    }

    private void OnViewChanged(MembershipSnapshot view)
    {
        var runtime = _runtime;
        if (runtime is null) return;
        var before = runtime.Locator.Ring;
        runtime.Locator.OnViewChanged(view);
        if (runtime.Locator.Ring == before) return;
        var ring = runtime.Locator.Ring;
        runtime.Log.ViewChanged(runtime.Self, ring.Version, ring.Silos.Count);
        foreach (var silo in before.Silos)
            if (view.GetStatus(silo) == SiloStatus.Dead)
                _transport.Disconnect(silo);
    }

    private async Task StopAfterDeathAsync()
    {
        // Declared dead by the others: our activations may already live elsewhere, so drop everything now.
        await AbortAsync().ConfigureAwait(false);
    }

    private async Task CollectLoopAsync(SiloRuntime runtime)
    {
        using var timer = new PeriodicTimer(_options.CollectionQuantum, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(runtime.StoppingToken).ConfigureAwait(false))
            {
                try
                {
                    long idleSince = _time.GetTimestamp() - (long)(_options.CollectionAge.TotalSeconds * _time.TimestampFrequency);
                    runtime.Catalog.CollectIdle(idleSince);
                }
                catch (Exception e)
                {
                    runtime.Log.CollectorFailed(e);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private static InvalidOperationException NotStarted() => new("The silo is not started (call StartAsync first).");

    /// <summary>Lets the transport start before the runtime (which needs the bound port) exists.</summary>
    private sealed class HandlerSlot : ISiloMessageHandler
    {
        public ISiloMessageHandler? Target { get; set; }

        public Task<ReadOnlyMemory<byte>> HandleAsync(ReadOnlyMemory<byte> request, CancellationToken cancellationToken) =>
            Target?.HandleAsync(request, cancellationToken)
            ?? throw new InvalidOperationException("The silo is still starting and cannot answer yet.");
    }

    /// <summary>Membership probes go over the same transport as grain calls.</summary>
    private sealed class MessengerProbe(SiloMessenger messenger) : IProbe
    {
        public Task ProbeAsync(SiloAddress target, CancellationToken cancellationToken) => messenger.PingAsync(target, cancellationToken);
    }
}
