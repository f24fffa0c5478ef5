namespace MigrationFabric.Grains.Invocation;

/// <summary>Base of generated grain proxies: a grain id plus the invoker that carries calls to it.</summary>
public abstract class GrainReference : IEquatable<GrainReference>
{
    /// <summary>Called by generated proxies.</summary>
    protected GrainReference(GrainId id, GrainInterfaceDescriptor descriptor, IGrainCallInvoker invoker)
    {
        Id = id;
        Descriptor = descriptor;
        Invoker = invoker;
    }

    /// <summary>The target grain.</summary>
    public GrainId Id { get; }

    /// <summary>The interface this reference implements.</summary>
    public GrainInterfaceDescriptor Descriptor { get; }

    /// <summary>Carries the calls (the silo's or the cluster client's runtime).</summary>
    public IGrainCallInvoker Invoker { get; }

    /// <summary>Calls method <paramref name="methodId"/> and casts its result.</summary>
    protected async Task<T> InvokeAsync<T>(int methodId, object?[] args) =>
        (T)(await Invoker.InvokeAsync(this, methodId, args).ConfigureAwait(false))!;

    /// <summary>Calls a method without a result.</summary>
    protected Task InvokeVoidAsync(int methodId, object?[] args) => Invoker.InvokeAsync(this, methodId, args);

    /// <inheritdoc />
    public bool Equals(GrainReference? other) => other is not null && Id.Equals(other.Id);

    /// <inheritdoc />
    public override bool Equals(object? obj) => Equals(obj as GrainReference);

    /// <inheritdoc />
    public override int GetHashCode() => Id.GetHashCode();

    /// <inheritdoc />
    public override string ToString() => Id.ToString();
}

/// <summary>Carries grain calls: implemented by the silo runtime and the cluster client.</summary>
public interface IGrainCallInvoker
{
    /// <summary>Runs the call through filters, routing and timeouts; completes with the method's result (null for void).</summary>
    Task<object?> InvokeAsync(GrainReference target, int methodId, object?[] args);
}
