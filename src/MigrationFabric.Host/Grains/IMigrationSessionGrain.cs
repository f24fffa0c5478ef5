namespace MigrationFabric.Host.Grains;

using MigrationFabric.Contracts.V1;
using MigrationFabric.Grains;

/// <summary>One migration (key: its id): plan, phase, progress and result, persisted so a restarted coordinator knows where it stood.</summary>
public interface IMigrationSessionGrain : IGrainWithStringKey
{
    /// <summary>Records a new migration as planned (ALREADY_EXISTS when the id is taken).</summary>
    Task<Migration> Plan(Migration migration);

    /// <summary>The migration (NOT_FOUND when unknown).</summary>
    Task<Migration> Describe();

    /// <summary>The newest progress event (its final field set once ended).</summary>
    Task<MigrationEvent> Progress();

    /// <summary>From the coordinator: progress (persisted on phase changes).</summary>
    Task Report(MigrationEvent progress);

    /// <summary>From the coordinator: the migration ended (completed, failed or cancelled).</summary>
    Task Finish(Migration final);

    /// <summary>Cancels it (FAILED_PRECONDITION once past switch-over or ended).</summary>
    Task<Migration> Cancel();
}

/// <summary>What a MigrationSessionGrain persists (protobuf bytes, so the public shape is the stored shape).</summary>
public sealed class MigrationSessionState
{
    /// <summary>The Migration message.</summary>
    public byte[] Migration { get; set; } = [];
}
