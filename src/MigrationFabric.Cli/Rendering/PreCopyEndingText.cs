namespace MigrationFabric.Cli.Rendering;

using System.Globalization;
using MigrationFabric.Contracts.V1;

/// <summary>A report's pre-copy ending as people read it: why the rounds stopped and what downtime was expected.</summary>
public static class PreCopyEndingText
{
    /// <summary>"converged", "max rounds" or "throttle exhausted".</summary>
    public static string Short(PreCopyEnding ending) => ending.Decision switch
    {
        PreCopyDecision.Converged => "converged",
        PreCopyDecision.RoundsExhausted => "max rounds",
        PreCopyDecision.ThrottleExhausted => "throttle exhausted",
        _ => "-",
    };

    /// <summary>The rounds column: the count, with how they ended when the report says ("4 (throttle exhausted)").</summary>
    public static string Rounds(MigrationReport report)
    {
        string count = report.PagesPerRound.Count.ToString(CultureInfo.InvariantCulture);
        return report.PreCopyEnding is { } e ? $"{count} ({Short(e)})" : count;
    }

    /// <summary>One line for the outcome of `mf migrate --watch`; null when the report has no pre-copy ending (post-copy, older servers).</summary>
    public static string? Line(MigrationReport? report)
    {
        if (report?.PreCopyEnding is not { } e) return null;
        if (e.Reason.Length > 0) return $"pre-copy ended ({Short(e)}): {e.Reason}";
        string expected = e.ExpectedDowntime is { } d ? Units.Duration(d.ToTimeSpan()) : "unknown";
        return $"pre-copy ended ({Short(e)}) after {e.Rounds} rounds: {e.RemainingPages} pages left, expected downtime {expected}";
    }
}
