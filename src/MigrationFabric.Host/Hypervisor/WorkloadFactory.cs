using MigrationFabric.Contracts.V1;
using MigrationFabric.Host.Errors;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Workloads;
using Workload = MigrationFabric.Contracts.V1.Workload;

namespace MigrationFabric.Host.Hypervisor;

/// <summary>Turns the API's Workload message into a Memory workload (validated, defaults filled in).</summary>
public static class WorkloadFactory
{
    /// <summary>Throws INVALID_ARGUMENT naming the field when <paramref name="workload"/> cannot run in <paramref name="memoryBytes"/>.</summary>
    public static void Validate(Workload? workload, ulong memoryBytes)
    {
        if (workload is null || workload.Kind == WorkloadKind.Unspecified)
            throw FabricException.Invalid("workload.kind is required (IDLE, MEMORY_BENCHMARK, HOT_SET, KEY_VALUE or MEMORY_SPIKE).");
        if (!Enum.IsDefined(workload.Kind)) throw FabricException.Invalid($"workload.kind {(int)workload.Kind} is not a known workload.");
        if (workload.Vcpus > 64) throw FabricException.Invalid($"workload.vcpus must be within 1..64, was {workload.Vcpus}.");
        if (workload.WorkingSetPercent > 100) throw FabricException.Invalid($"workload.working_set_percent must be within 1..100, was {workload.WorkingSetPercent}.");
        if (workload.SetPercent > 100) throw FabricException.Invalid($"workload.set_percent must be within 0..100, was {workload.SetPercent}.");
        if (workload.Kind == WorkloadKind.MemorySpike && SpikePages(workload) + 1024 > (long)(memoryBytes / Page.Size))
            throw FabricException.Invalid($"workload.spike_bytes {workload.SpikeBytes} plus the 4 MiB base footprint does not fit the VM's {memoryBytes} bytes.");
    }

    /// <summary>A fresh workload for <paramref name="workload"/> (a new VM).</summary>
    public static MigrationFabric.Memory.Workloads.Workload Create(Workload workload, long pageCount) => Build(workload, pageCount, resumed: false);

    /// <summary>The workload of a migrated VM, continuing from <paramref name="deviceState"/> (throws InvalidDataException naming what does not fit).</summary>
    public static MigrationFabric.Memory.Workloads.Workload Resume(Workload workload, long pageCount, ReadOnlySpan<byte> deviceState)
    {
        var w = Build(workload, pageCount, resumed: true);
        w.RestoreState(deviceState);
        return w;
    }

    private static MigrationFabric.Memory.Workloads.Workload Build(Workload workload, long pageCount, bool resumed)
    {
        int vcpus = workload.Vcpus == 0 ? 1 : (int)workload.Vcpus;
        return workload.Kind switch
        {
            WorkloadKind.Idle => new IdleWorkload(new IdleWorkloadOptions { Vcpus = vcpus }),
            WorkloadKind.MemoryBenchmark => new MemoryBenchmarkWorkload(new MemoryBenchmarkOptions { Vcpus = vcpus }),
            WorkloadKind.HotSet => new HotSetWorkload(new HotSetOptions
            {
                Vcpus = vcpus,
                WorkingSetFraction = (workload.WorkingSetPercent == 0 ? 10 : workload.WorkingSetPercent) / 100.0,
                TargetDirtyPagesPerSecond = workload.DirtyPagesPerSecond,
            }),
            // Same options at both ends (same spec, same memory): the restored per-key versions and slots fit.
            WorkloadKind.KeyValue => new KeyValueStoreWorkload(new KeyValueStoreOptions
            {
                Vcpus = vcpus,
                GetFraction = 1 - (workload.SetPercent == 0 ? 10 : workload.SetPercent) / 100.0,
                Keys = (int)Math.Clamp(pageCount / vcpus * 2, 64, 10_000),
                Preload = true,
            }),
            WorkloadKind.MemorySpike => new MemorySpikeWorkload(new MemorySpikeOptions
            {
                Vcpus = vcpus,
                SpikePages = SpikePages(workload),
                // The auto-trigger is a timer of the host it started on; a trigger already pending travels in the vCPU state.
                SpikeAfter = resumed ? null : TimeSpan.FromSeconds(1),
            }),
            _ => throw FabricException.Invalid($"workload.kind {workload.Kind} is not a known workload."),
        };
    }

    private static long SpikePages(Workload w) => w.SpikeBytes == 0 ? 2048 : (long)(w.SpikeBytes / Page.Size);
}
