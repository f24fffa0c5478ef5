using MigrationFabric.Grains.Membership;
using MigrationFabric.Grains.Storage;

namespace MigrationFabric.Grains;

/// <summary>What a grain sees of the runtime: its id, the silo it lives on, a grain factory and its storage.</summary>
public interface IGrainContext
{
    /// <summary>The grain's id.</summary>
    GrainId GrainId { get; }

    /// <summary>The silo hosting this activation.</summary>
    SiloAddress Silo { get; }

    /// <summary>Makes references to other grains (calls go through the runtime, with filters and timeouts).</summary>
    IGrainFactory GrainFactory { get; }

    /// <summary>Services registered on the silo (<see cref="Runtime.SiloBuilder.AddService"/>).</summary>
    IServiceProvider Services { get; }

    /// <summary>A persistent state bound to this grain, stored under <paramref name="stateName"/> in the storage named <paramref name="storageName"/>.</summary>
    IPersistentState<T> GetPersistentState<T>(string stateName, string storageName = Runtime.SiloBuilder.DefaultStorageName);

    /// <summary>Asks the runtime to deactivate this activation once the current request completes.</summary>
    void DeactivateOnIdle();
}
