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
}

/// <summary>The pre-copy policy in one place: when the remainder fits the downtime target, and how auto-converge steps the throttle (QEMU's rules).</summary>
public sealed class ConvergencePlanner(PreCopyOptions options)
{
    /// <summary>What switching over now would cost: <paramref name="dirtyPages"/> at <paramref name="bytesPerSecond"/>; MaxValue before any rate is known.</summary>
    public static TimeSpan ExpectedDowntime(long dirtyPages, double bytesPerSecond)
        => bytesPerSecond > 0 ? TimeSpan.FromSeconds(dirtyPages * (double)Page.Size / bytesPerSecond) : TimeSpan.MaxValue;

    /// <summary>Decides after round <paramref name="round"/> with <paramref name="dirtyPages"/> left at <paramref name="bytesPerSecond"/>.</summary>
    public RoundDecision Decide(int round, long dirtyPages, double bytesPerSecond, int? maxRounds)
    {
        if (ExpectedDowntime(dirtyPages, bytesPerSecond) <= options.DowntimeTarget) return RoundDecision.SwitchOver;
        if (maxRounds is { } max && round >= max) return RoundDecision.RoundsExhausted;
        return RoundDecision.Continue;
    }

    /// <summary>The throttle for the next round, given the pages a round sent and the pages the guest dirtied meanwhile.</summary>
    public double NextThrottle(double current, long pagesSent, long pagesDirtied)
    {
        if (!options.AutoConverge || pagesDirtied <= options.AutoConvergeTriggerRatio * Math.Max(1, pagesSent)) return current;
        return current <= 0 ? options.AutoConvergeInitialThrottle : Math.Min(options.AutoConvergeMaxThrottle, current + options.AutoConvergeIncrement);
    }
}
