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

    /// <summary>Ends migration <paramref name="migrationId"/> that left the VM split: it runs on <paramref name="newHost"/> and <paramref name="remoteHosts"/> hold the rest of its memory.</summary>
    Task EndSplitMigration(string migrationId, string newHost, string[] remoteHosts);

    /// <summary>From the main host: the VM's memory map (MemoryMap.Serialize) as the pager moved pages; persisted.</summary>
    Task SaveMemoryMap(string migrationId, byte[] map);

    /// <summary>From the main host of split <paramref name="migrationId"/>: sub-host <paramref name="host"/> died holding <paramref name="pages"/> pages only it had; persisted and reported by Describe.</summary>
    Task ReportMemoryLost(string migrationId, string host, long pages, string message);

    /// <summary>From the host running it: its vCPUs on <paramref name="host"/> stopped with <paramref name="error"/>; persisted and reported by Describe when that host does not answer.</summary>
    Task ReportVcpuFault(string host, string error);

    /// <summary>The persisted memory map (empty when the VM is not split).</summary>
    Task<byte[]> MemoryMap();
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

    /// <summary>Hosts holding part of its memory (a split's sub-hosts, in the map's order); empty when all of it is at its host.</summary>
    public List<string> RemoteHosts { get; set; } = [];

    /// <summary>Its memory map (MemoryMap.Serialize: which page lives on the main host and which on each sub-host); empty when not split.</summary>
    public byte[] MemoryMap { get; set; } = [];

    /// <summary>Why part of its memory is lost (a sub-host died); empty while whole.</summary>
    public string MemoryError { get; set; } = "";

    /// <summary>Pages lost with that host.</summary>
    public long LostPages { get; set; }

    /// <summary>The migration that split it (whose main writes its map); empty when whole.</summary>
    public string SplitMigrationId { get; set; } = "";

    /// <summary>VMMB reservation it was created with, bytes (answered when its host cannot be reached).</summary>
    public ulong ReservationBytes { get; set; }

    /// <summary>VMMB weight it was created with (answered when its host cannot be reached).</summary>
    public uint Weight { get; set; } = 1;

    /// <summary>The split whose main reported <see cref="MemoryError"/> (kept when that split's own ending lands after the report).</summary>
    public string MemoryErrorMigrationId { get; set; } = "";

    /// <summary>Why its vCPUs stopped (VcpuFaults.Describe), as the host in <see cref="VcpuErrorHost"/> reported; empty when none did.</summary>
    public string VcpuError { get; set; } = "";

    /// <summary>The host whose vCPUs stopped with <see cref="VcpuError"/> (it describes the VM only while that is its host).</summary>
    public string VcpuErrorHost { get; set; } = "";
}
