namespace MigrationFabric.Host.Grains;

using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Grains;
using MigrationFabric.Grains.Storage;
using MigrationFabric.Host.Errors;
using MigrationFabric.Rpc;

/// <summary>One migration's record and progress; the coordinator on the source host reports into it, the API reads it.</summary>
public sealed class MigrationSessionGrain(IPersistentState<MigrationSessionState> state) : Grain, IMigrationSessionGrain
{
    private Migration? _migration;
    private MigrationEvent? _progress;

    /// <inheritdoc />
    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        await state.ReadStateAsync(cancellationToken);
        if (state.State.Migration.Length == 0) return;
        _migration = Migration.Parser.ParseFrom(state.State.Migration);
        if (IsEnded(_migration.Phase)) return;
        // Recovery: a running migration whose coordinator no longer knows it (its agent restarted) ended there.
        bool running;
        try
        {
            running = await GrainFactory.GetGrain<IHostGrain>(_migration.Source).RunsOutgoing(_migration.Id);
        }
        catch (Exception)
        {
            running = false;
        }
        if (!running)
        {
            var lost = _migration.Clone();
            bool afterSwitch = lost.Phase is MigrationPhase.PostCopy or MigrationPhase.Verifying;
            lost.Phase = MigrationPhase.Failed;
            lost.EndedAt = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow);
            lost.Error = afterSwitch
                ? $"the coordinator on source host '{lost.Source}' was lost during {_migration.Phase}: the VM had resumed at the destination while pages were still at the source (a known loss of post-copy)."
                : $"the coordinator on source host '{lost.Source}' was lost during {_migration.Phase}, before switch-over: the VM stayed at its source.";
            await Store(lost);
        }
    }

    /// <inheritdoc />
    public async Task<Migration> Plan(Migration migration)
    {
        if (_migration is not null) throw new FabricException(StatusCode.AlreadyExists, $"migration '{GetPrimaryKeyString()}' already exists.");
        await Store(migration);
        return migration;
    }

    /// <inheritdoc />
    public Task<Migration> Describe() => Task.FromResult(Current());

    /// <inheritdoc />
    public Task<MigrationEvent> Progress()
    {
        var m = Current();
        if (IsEnded(m.Phase))
        {
            var last = _progress?.Clone() ?? new MigrationEvent { MigrationId = m.Id };
            last.Phase = m.Phase;
            last.At = m.EndedAt;
            last.Final = m;
            if (m.Report is { } r) last.BytesSent = r.BytesSent;
            last.BytesRemaining = 0;
            return Task.FromResult(last);
        }
        return Task.FromResult(_progress ?? new MigrationEvent { MigrationId = m.Id, Phase = m.Phase, At = m.StartedAt });
    }

    /// <inheritdoc />
    public async Task Report(MigrationEvent progress)
    {
        var m = Current();
        if (IsEnded(m.Phase)) return;
        _progress = progress;
        if (progress.Phase != m.Phase && progress.Phase != MigrationPhase.Unspecified)
        {
            var next = m.Clone();
            next.Phase = progress.Phase;
            await Store(next);
        }
    }

    /// <inheritdoc />
    public async Task Finish(Migration final)
    {
        if (_migration is not null && IsEnded(_migration.Phase)) return;
        await Store(final);
    }

    /// <inheritdoc />
    public async Task<Migration> Cancel()
    {
        var m = Current();
        if (IsEnded(m.Phase))
            throw FabricException.Precondition($"migration '{m.Id}' has already ended ({m.Phase}).");
        if (m.Phase is MigrationPhase.Switchover or MigrationPhase.PostCopy or MigrationPhase.Verifying)
            throw FabricException.Precondition($"migration '{m.Id}' is past switch-over ({m.Phase}): the VM runs at the destination and it can no longer be cancelled.");
        bool found = await GrainFactory.GetGrain<IHostGrain>(m.Source).CancelOutgoing(m.Id, "cancelled by a caller");
        if (!found)
            throw FabricException.Precondition($"migration '{m.Id}' is not running on its source host '{m.Source}'.");
        return Current();
    }

    private Migration Current() =>
        _migration ?? throw FabricException.NotFound($"migration '{GetPrimaryKeyString()}' does not exist.");

    private async Task Store(Migration migration)
    {
        _migration = migration;
        state.State.Migration = migration.ToByteArray();
        await state.WriteStateAsync();
    }

    internal static bool IsEnded(MigrationPhase phase) => phase is MigrationPhase.Completed or MigrationPhase.Failed or MigrationPhase.Cancelled;
}
