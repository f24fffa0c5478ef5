using MigrationFabric.Grains.Invocation;

namespace MigrationFabric.Grains.Activation;

/// <summary>One call waiting for (or running in) an activation's turn.</summary>
internal sealed class ActivationRequest(
    GrainId target, GrainInterfaceDescriptor descriptor, GrainMethodDescriptor method, object?[] args,
    string? traceParent, string? traceState)
{
    public GrainId Target { get; } = target;
    public GrainInterfaceDescriptor Descriptor { get; } = descriptor;
    public GrainMethodDescriptor Method { get; } = method;
    public object?[] Args { get; } = args;
    public string? TraceParent { get; } = traceParent;
    public string? TraceState { get; } = traceState;

    /// <summary>Completed with the result, the grain's exception, or <see cref="ActivationForwardedException"/>.</summary>
    public TaskCompletionSource<object?> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}

/// <summary>Another silo won the directory registration of this grain: the call must go there.</summary>
internal sealed class ActivationForwardedException(GrainId grain, Membership.SiloAddress winner)
    : Exception($"Grain {grain} is activated on silo {winner}.")
{
    public Membership.SiloAddress Winner { get; } = winner;
}

/// <summary>The activation was deactivating when the request arrived: the catalog retries on a fresh activation.</summary>
internal sealed class ActivationRetryException() : Exception("The activation was deactivating; retry.");
