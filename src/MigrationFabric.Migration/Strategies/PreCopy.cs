namespace MigrationFabric.Migration.Strategies;

/// <summary>Pre-copy: rounds of dirty pages while the VM runs, auto-converge when it does not converge, then stop-and-copy within the downtime target.</summary>
public sealed class PreCopy(PreCopyOptions? options = null) : MigrationStrategy(options ?? new PreCopyOptions())
{
    private PreCopyOptions Options => (PreCopyOptions)BaseOptions;

    /// <inheritdoc/>
    public override string Name => "pre-copy";

    private protected override async Task BeforeSwitchOverAsync(MigrationSession session, CancellationToken cancellationToken)
    {
        await RoundLoop.RunAsync(session, Options, Options.MaxRounds, cancellationToken).ConfigureAwait(false);
        await SwitchOver.RunAsync(session, SwitchOverMode.StopAndCopy, 0, cancellationToken).ConfigureAwait(false);
    }
}
