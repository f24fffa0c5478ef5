using MigrationFabric.Grains.Invocation;

namespace MigrationFabric.Grains.Filters;

/// <summary>Walks the incoming filter chain, then dispatches into the grain through the generated descriptor.</summary>
internal sealed class IncomingCallContext(
    IReadOnlyList<IIncomingGrainCallFilter> filters, object grain, GrainId target,
    GrainInterfaceDescriptor descriptor, GrainMethodDescriptor method, object?[] args) : IIncomingGrainCallContext
{
    private int _next;

    public object Grain => grain;
    public GrainId TargetId => target;
    public string InterfaceName => descriptor.Name;
    public string MethodName => method.Name;
    public object?[] Arguments => args;
    public object? Result { get; set; }

    public async Task Invoke()
    {
        int i = _next++;
        if (i < filters.Count)
        {
            await filters[i].Invoke(this);
            return;
        }
        Result = await descriptor.Invoke(grain, method.Id, args);
    }
}

/// <summary>Walks the outgoing filter chain, then hands the call to the router.</summary>
internal sealed class OutgoingCallContext(
    IReadOnlyList<IOutgoingGrainCallFilter> filters, GrainReference target, GrainMethodDescriptor method,
    object?[] args, Func<GrainReference, GrainMethodDescriptor, object?[], Task<object?>> send) : IOutgoingGrainCallContext
{
    private int _next;

    public GrainId TargetId => target.Id;
    public string InterfaceName => target.Descriptor.Name;
    public string MethodName => method.Name;
    public object?[] Arguments => args;
    public object? Result { get; set; }

    public async Task Invoke()
    {
        int i = _next++;
        if (i < filters.Count)
        {
            await filters[i].Invoke(this);
            return;
        }
        Result = await send(target, method, args);
    }
}
