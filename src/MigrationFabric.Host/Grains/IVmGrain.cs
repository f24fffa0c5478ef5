namespace MigrationFabric.Host.Grains;

using MigrationFabric.Contracts.V1;
using MigrationFabric.Grains;

/// <summary>An emulated VM (key: VM name): its record (host, size, workload, state), placed on the silo of the host running it.</summary>
public interface IVmGrain : IGrainWithStringKey
{
    /// <summary>Creates the VM on request.host (the name must already be claimed in the registry).</summary>
    Task<Vm> Create(CreateVmRequest request);

    /// <summary>The VM with its run-time figures (NOT_FOUND when it does not exist).</summary>
    Task<Vm> Describe();

    /// <summary>Stops and forgets the VM (FAILED_PRECONDITION while migrating); returns the bytes freed.</summary>
    Task<ulong> Delete();

    /// <summary>Pauses the vCPUs.</summary>
    Task<Vm> Pause();

    /// <summary>Resumes the vCPUs.</summary>
    Task<Vm> Resume();

    /// <summary>Marks the VM migrating under <paramref name="migrationId"/> (FAILED_PRECONDITION when already migrating).</summary>
    Task<Vm> BeginMigration(string migrationId, string destination);

    /// <summary>Ends migration <paramref name="migrationId"/>: the VM now runs on <paramref name="newHost"/>, or stays where it was when empty.</summary>
    Task EndMigration(string migrationId, string newHost);
}

/// <summary>What a VmGrain persists.</summary>
public sealed class VmRecord
{
    /// <summary>True once created.</summary>
    public bool Exists { get; set; }

    /// <summary>The host running its vCPUs.</summary>
    public string Host { get; set; } = "";

    /// <summary>Memory size in bytes.</summary>
    public ulong MemoryBytes { get; set; }

    /// <summary>The workload (protobuf bytes).</summary>
    public byte[] Workload { get; set; } = [];

    /// <summary>The running migration, empty when none.</summary>
    public string MigrationId { get; set; } = "";

    /// <summary>Paused by a caller.</summary>
    public bool Paused { get; set; }
}
