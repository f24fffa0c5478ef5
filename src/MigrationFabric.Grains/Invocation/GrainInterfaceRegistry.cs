using System.Collections.Concurrent;
using System.Reflection;

namespace MigrationFabric.Grains.Invocation;

/// <summary>Finds the generated descriptor of each grain interface (once per interface, from its assembly's attributes).</summary>
public sealed class GrainInterfaceRegistry
{
    private readonly ConcurrentDictionary<Type, GrainInterfaceDescriptor> _byType = new();
    private readonly ConcurrentDictionary<string, GrainInterfaceDescriptor> _byName = new(StringComparer.Ordinal);

    /// <summary>The descriptor of <paramref name="interfaceType"/>; reflection runs on the first lookup only.</summary>
    public GrainInterfaceDescriptor Get(Type interfaceType) =>
        _byType.TryGetValue(interfaceType, out var d) ? d : Load(interfaceType);

    /// <summary>The descriptor registered under wire name <paramref name="name"/>, or null.</summary>
    public GrainInterfaceDescriptor? Find(string name) => _byName.TryGetValue(name, out var d) ? d : null;

    private GrainInterfaceDescriptor Load(Type interfaceType)
    {
        if (!interfaceType.IsInterface || !typeof(IGrain).IsAssignableFrom(interfaceType))
            throw new ArgumentException($"{interfaceType.FullName} is not a grain interface (an interface deriving from IGrain).", nameof(interfaceType));
        foreach (var attr in interfaceType.Assembly.GetCustomAttributes<GrainInterfaceDescriptorAttribute>())
        {
            if (attr.InterfaceType != interfaceType) continue;
            var descriptor = (GrainInterfaceDescriptor)Activator.CreateInstance(attr.DescriptorType, nonPublic: true)!;
            _byName.TryAdd(descriptor.Name, descriptor);
            return _byType.GetOrAdd(interfaceType, descriptor);
        }
        throw new InvalidOperationException(
            $"No generated descriptor for grain interface {interfaceType.FullName}: reference src/MigrationFabric.Grains.CodeGen as an analyzer " +
            "(OutputItemType=\"Analyzer\" ReferenceOutputAssembly=\"false\") in the project that declares it.");
    }
}
