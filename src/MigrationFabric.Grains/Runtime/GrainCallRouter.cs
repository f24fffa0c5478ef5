using MigrationFabric.Grains.Activation;
using MigrationFabric.Grains.Filters;
using MigrationFabric.Grains.Invocation;
using MigrationFabric.Grains.Messaging;
using MigrationFabric.Grains.Membership;
using MigrationFabric.Grains.Placement;

namespace MigrationFabric.Grains.Runtime;

/// <summary>Carries a silo's outgoing grain calls: filters, timeout, trace context, then directory lookup or placement and delivery.</summary>
internal sealed class GrainCallRouter(SiloRuntime runtime) : IGrainCallInvoker
{
    public Task<object?> InvokeAsync(GrainReference target, int methodId, object?[] args)
    {
        var method = target.Descriptor.GetMethod(methodId);
        var filters = runtime.OutgoingFilters;
        if (filters.Count == 0) return SendAsync(target, method, args);
        return InvokeFilteredAsync(filters, target, method, args);
    }

    private async Task<object?> InvokeFilteredAsync(IReadOnlyList<IOutgoingGrainCallFilter> filters, GrainReference target, GrainMethodDescriptor method, object?[] args)
    {
        var context = new OutgoingCallContext(filters, target, method, args, SendAsync);
        await context.Invoke().ConfigureAwait(false);
        return context.Result;
    }

    private async Task<object?> SendAsync(GrainReference target, GrainMethodDescriptor method, object?[] args)
    {
        var timeout = method.Timeout ?? runtime.Options.RequestTimeout;
        using var activity = runtime.Tracing.StartClientActivity(target, method);
        var (tp, ts) = GrainTracing.Capture(activity);
        using var cts = new CancellationTokenSource();
        var call = RouteAsync(target.Id, target.Descriptor, method, args, tp, ts, cts.Token);
        try
        {
            return await call.WaitAsync(timeout, runtime.Time).ConfigureAwait(false);
        }
        catch (TimeoutException) when (!call.IsCompleted)
        {
            cts.Cancel();
            throw new GrainCallTimeoutException(target.Id, method.Name, timeout);
        }
    }

    /// <summary>A call a cluster client sent to this silo as its gateway: routed like a local one (timeouts are the client's).</summary>
    public Task<object?> RouteFromGatewayAsync(GrainId id, GrainInterfaceDescriptor descriptor, GrainMethodDescriptor method, object?[] args, string? tp, string? ts) =>
        RouteAsync(id, descriptor, method, args, tp, ts, runtime.StoppingToken);

    private async Task<object?> RouteAsync(GrainId id, GrainInterfaceDescriptor descriptor, GrainMethodDescriptor method,
        object?[] args, string? tp, string? ts, CancellationToken cancellationToken)
    {
        for (int hop = 0; hop < runtime.Options.MaxForwardCount; hop++)
        {
            var silo = await runtime.Locator.LookupAsync(id, cancellationToken).ConfigureAwait(false)
                ?? await PlaceAsync(id, descriptor).ConfigureAwait(false);
            try
            {
                if (silo.Equals(runtime.Self))
                    return await runtime.Catalog.InvokeAsync(id, descriptor, method, args, tp, ts).ConfigureAwait(false);
                return await runtime.Messenger.CallGrainAsync(silo, MessageKind.GrainCall, id, descriptor, method, args, tp, ts, cancellationToken).ConfigureAwait(false);
            }
            catch (ActivationForwardedException f)
            {
                runtime.Locator.Cache(id, f.Winner);
            }
        }
        throw new GrainRoutingException($"Grain call {id}.{method.Name} was forwarded {runtime.Options.MaxForwardCount} times without reaching an activation (SiloOptions.MaxForwardCount).");
    }

    private ValueTask<SiloAddress> PlaceAsync(GrainId id, GrainInterfaceDescriptor descriptor)
    {
        var type = runtime.GetGrainType(descriptor);
        var ring = runtime.Locator.Ring;
        var self = ring.Contains(runtime.Self) ? runtime.Self : null;
        return type.Placement.PlaceAsync(new PlacementContext(id, type.GrainClass, self, runtime.Membership.Current, ring, runtime.GrainFactory));
    }
}
