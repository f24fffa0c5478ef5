using MigrationFabric.Grains.Invocation;

namespace MigrationFabric.Grains.Runtime;

/// <summary>Makes proxies whose calls go through <paramref name="invoker"/>.</summary>
internal sealed class GrainFactory(GrainInterfaceRegistry interfaces, IGrainCallInvoker invoker) : IGrainFactory
{
    public TGrainInterface GetGrain<TGrainInterface>(string key) where TGrainInterface : IGrainWithStringKey
    {
        ArgumentNullException.ThrowIfNull(key);
        var descriptor = interfaces.Get(typeof(TGrainInterface));
        return (TGrainInterface)(object)descriptor.CreateReference(new GrainId(descriptor.Name, key), invoker);
    }
}
