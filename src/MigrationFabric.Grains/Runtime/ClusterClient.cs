using MigrationFabric.Grains.Filters;
using MigrationFabric.Grains.Invocation;
using MigrationFabric.Grains.Membership;
using MigrationFabric.Grains.Messaging;

namespace MigrationFabric.Grains.Runtime;

/// <summary>Options of a cluster client.</summary>
public sealed class ClusterClientOptions
{
    /// <summary>How long a grain call may take unless its method has [ResponseTimeout]. Default 30 s (as Orleans).</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How often the list of gateways (active silos) is re-read. Default 10 s.</summary>
    public TimeSpan GatewayRefreshPeriod { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid option.</summary>
    public void Validate()
    {
        if (RequestTimeout <= TimeSpan.Zero) throw new ArgumentException($"ClusterClientOptions.RequestTimeout must be positive (got {RequestTimeout}).");
        if (GatewayRefreshPeriod <= TimeSpan.Zero) throw new ArgumentException($"ClusterClientOptions.GatewayRefreshPeriod must be positive (got {GatewayRefreshPeriod}).");
    }
}

/// <summary>Calls grains from outside the silos (the scheduler API, <c>mf</c>): each call goes to a gateway silo that routes it.</summary>
public sealed class ClusterClient : IAsyncDisposable, IGrainCallInvoker
{
    private readonly ISiloTransport _transport;
    private readonly Func<CancellationToken, Task<IReadOnlyList<SiloAddress>>> _gateways;
    private readonly ClusterClientOptions _options;
    private readonly IReadOnlyList<IOutgoingGrainCallFilter> _filters;
    private readonly TimeProvider _time;
    private readonly GrainInterfaceRegistry _interfaces = new();
    private readonly GrainTracing _tracing = new();
    private readonly SemaphoreSlim _refresh = new(1, 1);
    private IReadOnlyList<SiloAddress> _current = [];
    private long _refreshedAt;
    private int _next;

    /// <summary>A client whose gateways come from <paramref name="gateways"/> (called again every refresh period and after a gateway fails).</summary>
    public ClusterClient(ISiloTransport transport, Func<CancellationToken, Task<IReadOnlyList<SiloAddress>>> gateways,
        ClusterClientOptions? options = null, IEnumerable<IOutgoingGrainCallFilter>? filters = null, TimeProvider? time = null)
    {
        _transport = transport;
        _gateways = gateways;
        _options = options ?? new ClusterClientOptions();
        _options.Validate();
        _filters = filters?.ToArray() ?? [];
        _time = time ?? TimeProvider.System;
        GrainFactory = new GrainFactory(_interfaces, this);
    }

    /// <summary>A client that uses the active silos of a membership table as gateways.</summary>
    public static ClusterClient ForMembershipTable(IMembershipTable table, ISiloTransport transport, ClusterClientOptions? options = null,
        IEnumerable<IOutgoingGrainCallFilter>? filters = null) =>
        new(transport, async ct =>
        {
            var data = await table.ReadAllAsync(ct).ConfigureAwait(false);
            return new MembershipSnapshot(data.Version.Version, data.Rows.Select(r => r.Entry)).ActiveSilos;
        }, options, filters);

    /// <summary>Makes grain references whose calls go through this client.</summary>
    public IGrainFactory GrainFactory { get; }

    /// <summary>Reads the gateway list; fails clearly when the cluster has no active silo.</summary>
    public async Task ConnectAsync(CancellationToken cancellationToken)
    {
        await RefreshAsync(force: true, cancellationToken).ConfigureAwait(false);
        if (_current.Count == 0) throw new GrainRoutingException("The cluster has no active silo to use as a gateway.");
    }

    Task<object?> IGrainCallInvoker.InvokeAsync(GrainReference target, int methodId, object?[] args)
    {
        var method = target.Descriptor.GetMethod(methodId);
        if (_filters.Count == 0) return SendAsync(target, method, args);
        return InvokeFilteredAsync(target, method, args);
    }

    private async Task<object?> InvokeFilteredAsync(GrainReference target, GrainMethodDescriptor method, object?[] args)
    {
        var context = new OutgoingCallContext(_filters, target, method, args, SendAsync);
        await context.Invoke().ConfigureAwait(false);
        return context.Result;
    }

    private async Task<object?> SendAsync(GrainReference target, GrainMethodDescriptor method, object?[] args)
    {
        var timeout = method.Timeout ?? _options.RequestTimeout;
        using var activity = _tracing.StartClientActivity(target, method);
        var (tp, ts) = GrainTracing.Capture(activity);
        using var cts = new CancellationTokenSource();
        var call = CallThroughGatewaysAsync(target, method, args, tp, ts, cts.Token);
        try
        {
            return await call.WaitAsync(timeout, _time).ConfigureAwait(false);
        }
        catch (TimeoutException) when (!call.IsCompleted)
        {
            cts.Cancel();
            throw new GrainCallTimeoutException(target.Id, method.Name, timeout);
        }
    }

    private async Task<object?> CallThroughGatewaysAsync(GrainReference target, GrainMethodDescriptor method, object?[] args,
        string? tp, string? ts, CancellationToken cancellationToken)
    {
        await RefreshAsync(force: false, cancellationToken).ConfigureAwait(false);
        var gateways = _current;
        if (gateways.Count == 0)
            throw new GrainRoutingException($"No gateway silo to send {target.Id}.{method.Name} to (the cluster has no active silo; ConnectAsync first).");
        SiloUnavailableException? last = null;
        for (int attempt = 0; attempt < gateways.Count; attempt++)
        {
            var gateway = gateways[(int)((uint)Interlocked.Increment(ref _next) % (uint)gateways.Count)];
            try
            {
                return await SiloMessenger.SendGrainCallAsync(_transport, gateway, MessageKind.GatewayCall, target.Id, target.Descriptor,
                    method, args, tp, ts, cancellationToken).ConfigureAwait(false);
            }
            catch (SiloUnavailableException e)
            {
                last = e; // try the next gateway: the call never reached this one
            }
        }
        _ = RefreshAsync(force: true, CancellationToken.None);
        throw last!;
    }

    private async Task RefreshAsync(bool force, CancellationToken cancellationToken)
    {
        if (!force && _current.Count > 0 && _time.GetElapsedTime(Volatile.Read(ref _refreshedAt)) < _options.GatewayRefreshPeriod) return;
        await _refresh.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            _current = await _gateways(cancellationToken).ConfigureAwait(false);
            Volatile.Write(ref _refreshedAt, _time.GetTimestamp());
        }
        finally
        {
            _refresh.Release();
        }
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync() => _transport.DisposeAsync();
}
