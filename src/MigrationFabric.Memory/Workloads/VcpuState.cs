namespace MigrationFabric.Memory.Workloads;

/// <summary>One vCPU's architectural state ("registers"): what its vCPU commits at operation boundaries and a migration carries to the destination.</summary>
/// <remarks>
/// The vCPU changes these fields only inside a commit (<see cref="Workload"/>'s BeginCommit/EndCommit), after the
/// operation's guest-memory accesses; the operation in progress when the MMU paused is redone from the last commit
/// at the destination, so every operation must give the same guest bytes when redone from the same registers.
/// </remarks>
public abstract class VcpuState
{
    /// <summary>Writes the registers (the capture checks afterwards that no commit ran meanwhile).</summary>
    public abstract void Save(BinaryWriter writer);

    /// <summary>Reads registers written by <see cref="Save"/>; throws <see cref="InvalidDataException"/> naming what does not fit this workload.</summary>
    public abstract void Load(BinaryReader reader);
}
