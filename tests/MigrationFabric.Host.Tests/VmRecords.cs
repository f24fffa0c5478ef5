namespace MigrationFabric.Host.Tests;

using MigrationFabric.Grains.Storage;
using MigrationFabric.Host.Agent;
using MigrationFabric.Host.Grains;

/// <summary>Reads a VM grain's persisted record straight from the cluster's grain storage (what a reactivated grain would read).</summary>
internal static class VmRecords
{
    public static async Task<VmRecord> Of(EmbeddedCluster cluster, string vm)
    {
        var state = new PersistentState<VmRecord>(new GrainStateKey("vm", $"{typeof(IVmGrain).FullName}/{vm}"), cluster.Storage);
        await state.ReadStateAsync();
        return state.State;
    }
}
