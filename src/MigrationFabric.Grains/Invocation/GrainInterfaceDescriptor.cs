using MigrationFabric.Grains.Serialization;

namespace MigrationFabric.Grains.Invocation;

/// <summary>One method of a grain interface, as the source generator saw it.</summary>
public sealed class GrainMethodDescriptor(string name, int id, TimeSpan? timeout, bool alwaysInterleave, bool hasResult)
{
    /// <summary>The method's name.</summary>
    public string Name { get; } = name;

    /// <summary>Index of the method in its interface descriptor (the wire id).</summary>
    public int Id { get; } = id;

    /// <summary>The [ResponseTimeout] override, or null for the silo default.</summary>
    public TimeSpan? Timeout { get; } = timeout;

    /// <summary>True when marked [AlwaysInterleave].</summary>
    public bool AlwaysInterleave { get; } = alwaysInterleave;

    /// <summary>True for Task&lt;T&gt; / ValueTask&lt;T&gt; methods.</summary>
    public bool HasResult { get; } = hasResult;
}

/// <summary>Generated per grain interface: makes proxies, dispatches calls and (de)serializes arguments and results without reflection.</summary>
public abstract class GrainInterfaceDescriptor
{
    /// <summary>Called by generated descriptors.</summary>
    protected GrainInterfaceDescriptor(Type interfaceType, string name, GrainMethodDescriptor[] methods)
    {
        InterfaceType = interfaceType;
        Name = name;
        Methods = methods;
    }

    /// <summary>The grain interface.</summary>
    public Type InterfaceType { get; }

    /// <summary>The wire name (full C# name); the grain type part of a <see cref="GrainId"/>.</summary>
    public string Name { get; }

    /// <summary>The methods, indexed by id.</summary>
    public IReadOnlyList<GrainMethodDescriptor> Methods { get; }

    /// <summary>A proxy implementing the interface.</summary>
    public abstract GrainReference CreateReference(GrainId id, IGrainCallInvoker invoker);

    /// <summary>Calls method <paramref name="methodId"/> on <paramref name="grain"/>.</summary>
    public abstract ValueTask<object?> Invoke(object grain, int methodId, object?[] args);

    /// <summary>Serializes the arguments of a call.</summary>
    public abstract void WriteArguments(int methodId, object?[] args, GrainWriter writer);

    /// <summary>Deserializes the arguments of a call.</summary>
    public abstract object?[] ReadArguments(int methodId, ref GrainReader reader);

    /// <summary>Serializes a result.</summary>
    public abstract void WriteResult(int methodId, object? result, GrainWriter writer);

    /// <summary>Deserializes a result.</summary>
    public abstract object? ReadResult(int methodId, ref GrainReader reader);

    /// <summary>The method descriptor of <paramref name="methodId"/> or a clear error.</summary>
    public GrainMethodDescriptor GetMethod(int methodId) =>
        (uint)methodId < (uint)Methods.Count ? Methods[methodId] : throw UnknownMethod(methodId);

    /// <summary>The error for a method id this interface does not have.</summary>
    protected Exception UnknownMethod(int methodId) =>
        new ArgumentOutOfRangeException(nameof(methodId), methodId, $"Grain interface {Name} has no method with id {methodId} (it has {Methods.Count}); caller and callee were built from different interface versions.");
}

/// <summary>Emitted by the source generator on the assembly: links a grain interface to its generated descriptor.</summary>
[AttributeUsage(AttributeTargets.Assembly, AllowMultiple = true)]
public sealed class GrainInterfaceDescriptorAttribute(Type interfaceType, Type descriptorType) : Attribute
{
    /// <summary>The grain interface.</summary>
    public Type InterfaceType { get; } = interfaceType;

    /// <summary>The generated <see cref="GrainInterfaceDescriptor"/> subclass.</summary>
    public Type DescriptorType { get; } = descriptorType;
}
