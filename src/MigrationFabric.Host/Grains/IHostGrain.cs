namespace MigrationFabric.Host.Grains;

using MigrationFabric.Contracts.V1;
using MigrationFabric.Grains;
using MigrationFabric.Host.Migrations;

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

    /// <summary>Destination side: reserves what <paramref name="plan"/> says and expects the pages of migration <paramref name="request"/> (FAILED_PRECONDITION when there is no room); returns how long preallocating its RAM took (zero when it did not).</summary>
    [ResponseTimeout("00:05:00")]
    Task<TimeSpan> PrepareIncoming(StartMigrationRequest request, ulong memoryBytes, Workload workload, MigrationPlan plan);

    /// <summary>Split sub-host / scatter-gather intermediate: reserves <paramref name="part"/>'s bytes and expects its part of VM <paramref name="vm"/> (FAILED_PRECONDITION when there is no room).</summary>
    Task PrepareHold(string migrationId, string vm, ulong memoryBytes, PlannedHost part);

    /// <summary>Stops holding VM <paramref name="vm"/>'s part here (of migration <paramref name="migrationId"/> only, unless empty); false when none was held.</summary>
    Task<bool> ReleaseHold(string vm, string migrationId);

    /// <summary>The host's budget and what it can still admit.</summary>
    Task<HostRoom> Room();

    /// <summary>Source side: starts moving VM <paramref name="request"/>.vm as <paramref name="plan"/> says, in the background.</summary>
    Task StartOutgoing(StartMigrationRequest request, MigrationPlan plan);

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
