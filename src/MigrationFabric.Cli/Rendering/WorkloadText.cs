namespace MigrationFabric.Cli.Rendering;

using MigrationFabric.Contracts.V1;

/// <summary>Workload kinds as mf prints them ("hot-set").</summary>
public static class WorkloadText
{
    /// <summary>The name `mf vm create --workload` takes for <paramref name="k"/>; "?" for an unknown kind.</summary>
    public static string Name(WorkloadKind k) => k switch
    {
        WorkloadKind.Idle => "idle",
        WorkloadKind.MemoryBenchmark => "memory-benchmark",
        WorkloadKind.HotSet => "hot-set",
        WorkloadKind.KeyValue => "key-value",
        WorkloadKind.MemorySpike => "memory-spike",
        _ => "?",
    };
}
