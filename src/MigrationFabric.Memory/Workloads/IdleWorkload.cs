using MigrationFabric.Memory.Mmu;

namespace MigrationFabric.Memory.Workloads;

/// <summary>A guest that does nothing: zero throughput, no dirty pages (the idle-VM baseline).</summary>
public sealed class IdleWorkload(IdleWorkloadOptions? options = null, TimeProvider? time = null)
    : Workload("idle", "ops/s", (options ?? new()).Vcpus, (options ?? new()).SampleInterval, time)
{
    /// <inheritdoc/>
    protected override void RunVcpu(VirtualCpu cpu, int index, CancellationToken cancellationToken)
        => cancellationToken.WaitHandle.WaitOne();
}
