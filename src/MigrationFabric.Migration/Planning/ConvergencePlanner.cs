using MigrationFabric.Memory.Pages;
using MigrationFabric.Migration.Strategies;

namespace MigrationFabric.Migration.Planning;

/// <summary>What to do after a pre-copy round.</summary>
public enum RoundDecision
{
    /// <summary>The remainder fits the downtime target: stop and copy.</summary>
    SwitchOver,

    /// <summary>The round budget is spent: switch over anyway (pre-copy) or hand the rest to post-copy (hybrid).</summary>
    RoundsExhausted,

    /// <summary>Run another round.</summary>
    Continue,

    /// <summary>Auto-converge has held the maximum throttle for <see cref="PreCopyOptions.AutoConvergeMaxThrottleRounds"/> rounds and the remainder still does not fit: switch over anyway (pre-copy, unless over <see cref="PreCopyOptions.DowntimeLimit"/>) or hand the rest to post-copy (hybrid).</summary>
    ThrottleExhausted,
}

/// <summary>How pre-copy's rounds ended, as reported with the migration.</summary>
/// <param name="Decision">SwitchOver when the remainder fit the downtime target; RoundsExhausted or ThrottleExhausted when pre-copy stopped iterating without that.</param>
/// <param name="Rounds">Pre-copy rounds run (the switch-over's final pages not counted).</param>
/// <param name="RemainingPages">Dirty pages left for the switch-over.</param>
/// <param name="ExpectedDowntime">What those pages were expected to cost at the measured bandwidth (TimeSpan.MaxValue when no rate was known).</param>
/// <param name="Throttle">The vCPU throttle in the last round.</param>
/// <param name="Reason">The same in words, for operators and logs.</param>
public sealed record PreCopyEnding(RoundDecision Decision, int Rounds, long RemainingPages, TimeSpan ExpectedDowntime, double Throttle, string Reason);

/// <summary>The pre-copy policy in one place: when the remainder fits the downtime target, how auto-converge steps the throttle (QEMU's rules), and when iterating stops without converging.</summary>
/// <remarks>One per migration: it counts the consecutive rounds run at the maximum throttle.</remarks>
public sealed class ConvergencePlanner(PreCopyOptions options)
{
    private int _roundsAtMaxThrottle;

    /// <summary>Consecutive rounds so far that ran at <see cref="PreCopyOptions.AutoConvergeMaxThrottle"/>.</summary>
    public int RoundsAtMaxThrottle => _roundsAtMaxThrottle;

    /// <summary>What switching over now would cost: <paramref name="dirtyPages"/> at <paramref name="bytesPerSecond"/>; MaxValue before any rate is known.</summary>
    public static TimeSpan ExpectedDowntime(long dirtyPages, double bytesPerSecond)
        => bytesPerSecond > 0 ? TimeSpan.FromSeconds(dirtyPages * (double)Page.Size / bytesPerSecond) : TimeSpan.MaxValue;

    /// <summary>Decides after round <paramref name="round"/>, which ran at <paramref name="throttleDuringRound"/>, with <paramref name="dirtyPages"/> left at <paramref name="bytesPerSecond"/>.</summary>
    /// <remarks>In order: the remainder fits the target (switch over); <paramref name="maxRounds"/> reached; the maximum throttle held for
    /// AutoConvergeMaxThrottleRounds consecutive rounds (a guest that dirties faster than the link even at 99% throttle would
    /// otherwise iterate until the deadline, as QEMU does); else another round.</remarks>
    public RoundDecision Decide(int round, long dirtyPages, double bytesPerSecond, int? maxRounds, double throttleDuringRound = 0)
    {
        _roundsAtMaxThrottle = options.AutoConverge && throttleDuringRound >= options.AutoConvergeMaxThrottle - 1e-9 ? _roundsAtMaxThrottle + 1 : 0;
        if (ExpectedDowntime(dirtyPages, bytesPerSecond) <= options.DowntimeTarget) return RoundDecision.SwitchOver;
        if (maxRounds is { } max && round >= max) return RoundDecision.RoundsExhausted;
        if (_roundsAtMaxThrottle >= options.AutoConvergeMaxThrottleRounds) return RoundDecision.ThrottleExhausted;
        return RoundDecision.Continue;
    }

    /// <summary>The ending for a final <paramref name="decision"/> (not Continue), with its reason in words.</summary>
    public PreCopyEnding Ending(RoundDecision decision, int rounds, long remainingPages, TimeSpan expectedDowntime, double throttle, int? maxRounds)
    {
        string cost = $"{remainingPages} dirty pages, expected downtime {Milliseconds(expectedDowntime)}";
        string target = $"the downtime target {options.DowntimeTarget.TotalMilliseconds:0.###} ms";
        string reason = decision switch
        {
            RoundDecision.SwitchOver => $"converged after {rounds} rounds: {cost}, within {target}",
            RoundDecision.RoundsExhausted => $"MaxRounds ({maxRounds}) reached without converging: {cost}, over {target}",
            RoundDecision.ThrottleExhausted => $"auto-converge exhausted: {_roundsAtMaxThrottle} rounds at the maximum throttle {options.AutoConvergeMaxThrottle:0.00} " +
                $"(AutoConvergeMaxThrottleRounds) and the guest still dirties faster than the link: {cost}, over {target}",
            _ => throw new ArgumentOutOfRangeException(nameof(decision), decision, "Continue is not an ending."),
        };
        return new PreCopyEnding(decision, rounds, remainingPages, expectedDowntime, throttle, reason);
    }

    /// <summary>The throttle for the next round, given the pages a round sent and the pages the guest dirtied meanwhile.</summary>
    /// <remarks>QEMU's mig_throttle_guest_down: start at the initial throttle, then add the increment; with tail-slow, add only what
    /// should bring the dirty rate down to the trigger threshold (at least one percentage point, at most the increment).</remarks>
    public double NextThrottle(double current, long pagesSent, long pagesDirtied)
    {
        double threshold = options.AutoConvergeTriggerRatio * Math.Max(1, pagesSent);
        if (!options.AutoConverge || pagesDirtied <= threshold) return current;
        if (current <= 0) return options.AutoConvergeInitialThrottle;
        double increment = options.AutoConvergeIncrement;
        if (options.AutoConvergeTailSlow)
        {
            double running = 1 - current;
            increment = Math.Clamp(running - running * (threshold / pagesDirtied), 0.01, increment);
        }
        return Math.Min(options.AutoConvergeMaxThrottle, current + increment);
    }

    private static string Milliseconds(TimeSpan t) => t == TimeSpan.MaxValue ? "unknown (no bandwidth measured)" : $"{t.TotalMilliseconds:0.#} ms";
}
