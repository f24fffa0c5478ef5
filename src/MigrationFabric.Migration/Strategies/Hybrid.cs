namespace MigrationFabric.Migration.Strategies;

/// <summary>Hybrid: bounded pre-copy rounds, then post-copy for the pages dirtied since (stop-and-copy if the rounds converged).</summary>
/// <remarks>The rounds also end when auto-converge is exhausted (see <see cref="PreCopyOptions.AutoConvergeMaxThrottleRounds"/>); then the rest goes post-copy.</remarks>
public sealed class Hybrid(HybridOptions? options = null) : MigrationStrategy(options ?? new HybridOptions())
{
    private HybridOptions Options => (HybridOptions)BaseOptions;

    /// <inheritdoc/>
    public override string Name => "hybrid";

    private protected override bool NeedsLocalPages => true;

    private protected override async Task BeforeSwitchOverAsync(MigrationSession session, CancellationToken cancellationToken)
    {
        int rounds = Options.MaxRounds is { } max ? Math.Min(max, Options.PreCopyRounds) : Options.PreCopyRounds;
        var ending = await RoundLoop.RunAsync(session, Options, rounds, cancellationToken).ConfigureAwait(false);
        bool converged = ending.Decision == Planning.RoundDecision.SwitchOver;
        if (converged) await SwitchOver.RunAsync(session, SwitchOverMode.StopAndCopy, Options.Prefetch, cancellationToken).ConfigureAwait(false);
        else await PostCopyFaultChannel.SwitchOverAsync(session, SwitchOverMode.PostCopyDirty, Options.Prefetch, Options.FaultTransport, cancellationToken).ConfigureAwait(false);
    }

    private protected override Reporting.MigrationReport CompleteReport(MigrationSession session, Reporting.MigrationReport report)
        => report with { PreCopyEnding = session.PreCopyEnding };

    private protected override Task AfterSwitchOverAsync(MigrationSession session, CancellationToken cancellationToken)
        => BackgroundPush.RunAsync(session, cancellationToken);
}
