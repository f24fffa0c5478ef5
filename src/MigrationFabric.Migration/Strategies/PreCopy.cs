using MigrationFabric.Migration.Planning;
using MigrationFabric.Migration.Reporting;

namespace MigrationFabric.Migration.Strategies;

/// <summary>Pre-copy: rounds of dirty pages while the VM runs, auto-converge when it does not converge, then stop-and-copy within the downtime target.</summary>
/// <remarks>When the rounds end without the remainder fitting the target (MaxRounds, or auto-converge exhausted at its maximum
/// throttle), it switches over anyway and the report's <see cref="MigrationReport.PreCopyEnding"/> says why and what downtime was
/// expected, unless that exceeds <see cref="PreCopyOptions.DowntimeLimit"/>: then it fails and the VM stays at the source.</remarks>
public sealed class PreCopy(PreCopyOptions? options = null) : MigrationStrategy(options ?? new PreCopyOptions())
{
    private PreCopyOptions Options => (PreCopyOptions)BaseOptions;

    /// <inheritdoc/>
    public override string Name => "pre-copy";

    private protected override async Task BeforeSwitchOverAsync(MigrationSession session, CancellationToken cancellationToken)
    {
        // A job with a page reader has pages not in its RAM (a split VM's main, whose pages live partly on sub-hosts).
        session.Streams.PageReader ??= session.Job.PageReader;
        var ending = await RoundLoop.RunAsync(session, Options, Options.MaxRounds, cancellationToken).ConfigureAwait(false);
        if (ending.Decision != RoundDecision.SwitchOver && Options.DowntimeLimit is { } limit && ending.ExpectedDowntime > limit)
            throw new DowntimeLimitExceededException(ending, limit);
        await SwitchOver.RunAsync(session, SwitchOverMode.StopAndCopy, 0, cancellationToken).ConfigureAwait(false);
    }

    private protected override MigrationReport CompleteReport(MigrationSession session, MigrationReport report) => report with { PreCopyEnding = session.PreCopyEnding };
}
