namespace MigrationFabric.Host.Migrations;

using MigrationFabric.Contracts.V1;
using MigrationFabric.Host.Errors;
using MigrationFabric.Migration.Strategies;
using MigrationFabric.Rpc;

/// <summary>Which strategies this fabric implements, and how a request's limits become a strategy's options.</summary>
public static class StrategyCatalog
{
    /// <summary>Default downtime target when the request leaves it unset (QEMU's).</summary>
    public static readonly TimeSpan DefaultDowntimeTarget = TimeSpan.FromMilliseconds(300);

    /// <summary>The strategies a migration can use today, in the order the demo runs them.</summary>
    public static IReadOnlyList<Strategy> Implemented { get; } = [Strategy.PreCopy, Strategy.PostCopy, Strategy.Hybrid];

    /// <summary>The CLI's name of a strategy (e.g. "pre-copy").</summary>
    public static string NameOf(Strategy strategy) => strategy switch
    {
        Strategy.PreCopy => "pre-copy",
        Strategy.PostCopy => "post-copy",
        Strategy.Hybrid => "hybrid",
        Strategy.Agile => "agile",
        Strategy.EnlightenedPostCopy => "enlightened-post-copy",
        Strategy.Split => "split",
        Strategy.ScatterGather => "scatter-gather",
        Strategy.VmemDirect => "vmem-direct",
        Strategy.VmemDevirtualize => "vmem-devirtualize",
        Strategy.NaiveSwap => "naive-swap",
        _ => strategy.ToString(),
    };

    /// <summary>The enum value's name in fabric.proto (e.g. "STRATEGY_SPLIT").</summary>
    public static string ProtoName(Strategy strategy) =>
        FabricReflection.Descriptor.FindTypeByName<Google.Protobuf.Reflection.EnumDescriptor>("Strategy").FindValueByNumber((int)strategy)?.Name ?? strategy.ToString();

    /// <summary>Parses a CLI strategy name ("pre-copy", "precopy", "PRE_COPY"...); null when unknown.</summary>
    public static Strategy? Parse(string text)
    {
        string key = text.Replace("-", "", StringComparison.Ordinal).Replace("_", "", StringComparison.Ordinal).ToLowerInvariant();
        if (key.StartsWith("strategy", StringComparison.Ordinal)) key = key["strategy".Length..];
        foreach (var s in Enum.GetValues<Strategy>())
            if (s != Strategy.Unspecified && NameOf(s).Replace("-", "", StringComparison.Ordinal) == key) return s;
        return null;
    }

    /// <summary>Fills the limits' defaults and checks them and the strategy (INVALID_ARGUMENT / UNIMPLEMENTED naming what was wrong).</summary>
    public static void ValidateAndFill(StartMigrationRequest request)
    {
        if (request.Strategy == Strategy.Unspecified)
            throw FabricException.Invalid("strategy is required (STRATEGY_PRE_COPY, STRATEGY_POST_COPY or STRATEGY_HYBRID).");
        if (!Enum.IsDefined(request.Strategy))
            throw FabricException.Invalid($"strategy {(int)request.Strategy} is not a known strategy.");
        if (!Implemented.Contains(request.Strategy))
            throw new FabricException(StatusCode.Unimplemented,
                $"strategy {NameOf(request.Strategy)} ({ProtoName(request.Strategy)}) is not implemented yet; implemented: {string.Join(", ", Implemented.Select(NameOf))}.");
        if (request.SubHosts.Count > 0)
            throw FabricException.Invalid($"sub_hosts are only for split and scatter-gather, not {NameOf(request.Strategy)}.");
        var limits = request.Limits ??= new MigrationLimits();
        if (limits.DowntimeTarget is null) limits.DowntimeTarget = Google.Protobuf.WellKnownTypes.Duration.FromTimeSpan(DefaultDowntimeTarget);
        else if (limits.DowntimeTarget.ToTimeSpan() <= TimeSpan.Zero)
            throw FabricException.Invalid($"limits.downtime_target must be positive, was {limits.DowntimeTarget.ToTimeSpan().TotalMilliseconds} ms.");
        if (limits.Deadline is not null && limits.Deadline.ToTimeSpan() < TimeSpan.Zero)
            throw FabricException.Invalid($"limits.deadline must not be negative, was {limits.Deadline.ToTimeSpan().TotalSeconds} s.");
        if (limits.Streams == 0) limits.Streams = 4;
        if (limits.Streams > 64) throw FabricException.Invalid($"limits.streams must be within 1..64, was {limits.Streams}.");
        if (limits.MaxRounds == 0) limits.MaxRounds = 30;
        if (limits.HybridPrecopyRounds == 0) limits.HybridPrecopyRounds = 2;
        if (limits.BandwidthBytesPerSecond is > 0 and < 1 << 20)
            throw FabricException.Invalid($"limits.bandwidth_bytes_per_second must be 0 (no cap) or at least 1 MiB/s, was {limits.BandwidthBytesPerSecond}.");
    }

    /// <summary>The strategy object for a validated request.</summary>
    public static MigrationStrategy Create(StartMigrationRequest request)
    {
        var limits = request.Limits;
        T Common<T>(T o) where T : MigrationOptions
        {
            o.Streams = (int)limits.Streams;
            if (limits.BandwidthBytesPerSecond > 0) o.BandwidthCap = (long)limits.BandwidthBytesPerSecond;
            if (limits.Deadline is { } d && d.ToTimeSpan() > TimeSpan.Zero) o.Deadline = d.ToTimeSpan();
            return o;
        }
        return request.Strategy switch
        {
            Strategy.PreCopy => new PreCopy(Common(new PreCopyOptions
            {
                DowntimeTarget = limits.DowntimeTarget.ToTimeSpan(),
                MaxRounds = (int)limits.MaxRounds,
                AutoConverge = !limits.DisableAutoConverge,
            })),
            Strategy.PostCopy => new PostCopy(Common(new PostCopyOptions())),
            Strategy.Hybrid => new Hybrid(Common(new HybridOptions
            {
                DowntimeTarget = limits.DowntimeTarget.ToTimeSpan(),
                PreCopyRounds = (int)limits.HybridPrecopyRounds,
                AutoConverge = !limits.DisableAutoConverge,
            })),
            _ => throw new FabricException(StatusCode.Unimplemented, $"strategy {NameOf(request.Strategy)} is not implemented yet."),
        };
    }
}
