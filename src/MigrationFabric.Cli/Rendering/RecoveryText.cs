namespace MigrationFabric.Cli.Rendering;

using MigrationFabric.Contracts.V1;

/// <summary>A report's recovery as people read it: the time, or why there is none.</summary>
public static class RecoveryText
{
    /// <summary>"120.3 ms", "not within 5.00 s", "no baseline" or "not observed"; "-" for a report from before the field.</summary>
    public static string Of(MigrationReport report) => report.Recovery switch
    {
        RecoveryOutcome.Recovered when report.RecoveryTime is { } t => Units.Duration(t.ToTimeSpan()),
        RecoveryOutcome.NotRecovered => $"not within {Units.Duration(report.RecoveryWindow?.ToTimeSpan() ?? TimeSpan.Zero)}",
        RecoveryOutcome.NoBaseline => "no baseline",
        RecoveryOutcome.NotObserved => "not observed",
        _ => "-",
    };
}
