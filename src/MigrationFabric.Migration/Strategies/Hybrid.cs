namespace MigrationFabric.Migration.Strategies;

/// <summary>Hybrid: bounded pre-copy rounds, then post-copy for the pages dirtied since (stop-and-copy if the rounds converged).</summary>
public sealed class Hybrid(HybridOptions? options = null) : MigrationStrategy(options ?? new HybridOptions())
{
    private HybridOptions Options => (HybridOptions)BaseOptions;

    /// <inheritdoc/>
    public override string Name => "hybrid";

    private protected override bool NeedsLocalPages => true;

    private protected override async Task BeforeSwitchOverAsync(MigrationSession session, CancellationToken cancellationToken)
    {
        int rounds = Options.MaxRounds is { } max ? Math.Min(max, Options.PreCopyRounds) : Options.PreCopyRounds;
        bool converged = await RoundLoop.RunAsync(session, Options, rounds, cancellationToken).ConfigureAwait(false);
        await SwitchOver.RunAsync(session, converged ? SwitchOverMode.StopAndCopy : SwitchOverMode.PostCopyDirty, Options.Prefetch, cancellationToken)
            .ConfigureAwait(false);
    }

    private protected override Task AfterSwitchOverAsync(MigrationSession session, CancellationToken cancellationToken)
        => BackgroundPush.RunAsync(session, cancellationToken);
}
