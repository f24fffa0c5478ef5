namespace MigrationFabric.Host.Grains;

using MigrationFabric.Contracts.V1;
using MigrationFabric.Grains;

/// <summary>A hypervisor host (key: host name); lives on its own host's silo and owns what runs there.</summary>
public interface IHostGrain : IGrainWithStringKey
{
    /// <summary>The host with its memory and VMs.</summary>
    Task<Host> Describe();

    /// <summary>Admits and starts a VM here (RESOURCE_EXHAUSTED when the budget cannot hold it).</summary>
    Task<Vm> StartVm(CreateVmRequest request);

    /// <summary>The run-time figures of a VM here (NOT_FOUND when it is not here).</summary>
    Task<Vm> DescribeVm(string vm);

    /// <summary>Stops a VM here and frees its memory; returns the bytes freed.</summary>
    Task<ulong> StopVm(string vm);

    /// <summary>Pauses or resumes a VM's vCPUs.</summary>
    Task SetPaused(string vm, bool paused);

    /// <summary>Destination side: reserves room and expects the pages of migration <paramref name="migrationId"/> (FAILED_PRECONDITION when there is no room).</summary>
    Task PrepareIncoming(string migrationId, string vm, ulong memoryBytes, Workload workload);

    /// <summary>Source side: starts moving VM <paramref name="request"/>.vm to <paramref name="destinationEndpoint"/> in the background.</summary>
    Task StartOutgoing(StartMigrationRequest request, string destinationEndpoint);

    /// <summary>Source side: cancels a running migration; false when none runs here with that id.</summary>
    Task<bool> CancelOutgoing(string migrationId, string reason);

    /// <summary>Source side: true while migration <paramref name="migrationId"/> runs here.</summary>
    Task<bool> RunsOutgoing(string migrationId);

    /// <summary>VMMB: divides this host's memory among its running VMs by demand, reservation and weight; applies the targets unless <paramref name="dryRun"/>.</summary>
    Task<RebalanceMemoryResponse> RebalanceMemory(bool dryRun);

    /// <summary>The workload's throughput samples of a VM here (after a migration: since its resume here).</summary>
    Task<WorkloadSamples> Throughput(string vm);
}

/// <summary>A VM's workload throughput samples: when the workload started and (elapsed, per second) pairs.</summary>
public sealed record WorkloadSamples(DateTimeOffset StartedAt, long[] ElapsedTicks, double[] PerSecond);
