namespace MigrationFabric.Host.Migrations;

using MigrationFabric.Contracts.V1;
using MigrationFabric.Host.Errors;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.DataPlane.FaultChannel;
using MigrationFabric.Migration.Strategies;
using MigrationFabric.Rpc;

/// <summary>Which strategies this fabric implements, and how a request's limits become a strategy's options.</summary>
public static class StrategyCatalog
{
    /// <summary>Default downtime target when the request leaves it unset (QEMU's).</summary>
    public static readonly TimeSpan DefaultDowntimeTarget = TimeSpan.FromMilliseconds(300);

    /// <summary>The strategies that move a VM to one host with room for it (what `mf demo` runs).</summary>
    public static IReadOnlyList<Strategy> Implemented { get; } = [Strategy.PreCopy, Strategy.PostCopy, Strategy.Hybrid];

    /// <summary>The strategies that need more than one host with room: sub-hosts or intermediates (split, scatter-gather), a smaller destination (vmem-direct, naive-swap) or a VM in private memory (vmem-devirtualize).</summary>
    public static IReadOnlyList<Strategy> MultiHostAndVirtualizing { get; } =
        [Strategy.Split, Strategy.ScatterGather, Strategy.VmemDirect, Strategy.NaiveSwap, Strategy.VmemDevirtualize];

    /// <summary>Every strategy a migration can use today.</summary>
    public static IReadOnlyList<Strategy> All { get; } = [.. Implemented, .. MultiHostAndVirtualizing];

    /// <summary>Most sub-hosts (split) or intermediates (scatter-gather) one migration may name.</summary>
    public const int MaxSubHosts = 8;

    /// <summary>Whether <paramref name="strategy"/> sends pages to more hosts than the destination (sub_hosts required).</summary>
    public static bool IsMultiHost(Strategy strategy) => strategy is Strategy.Split or Strategy.ScatterGather;

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
        if (!All.Contains(request.Strategy))
            throw new FabricException(StatusCode.Unimplemented,
                $"strategy {NameOf(request.Strategy)} ({ProtoName(request.Strategy)}) is not implemented yet; implemented: {string.Join(", ", All.Select(NameOf))}.");
        ValidateSubHosts(request);
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
        if (limits.VmemPagingMethod != 0 && request.Strategy != Strategy.VmemDirect)
            throw FabricException.Invalid($"limits.vmem_paging_method is only for vmem-direct, not {NameOf(request.Strategy)}.");
        if (request.Strategy == Strategy.VmemDirect)
        {
            if (limits.VmemPagingMethod == 0) limits.VmemPagingMethod = 1;
            if (limits.VmemPagingMethod > 2) throw FabricException.Invalid($"limits.vmem_paging_method must be 1 or 2, was {limits.VmemPagingMethod}.");
        }
        ValidatePreCopyEnding(request.Strategy, limits);
    }

    /// <summary>Most rounds at the maximum throttle limits.auto_converge_max_throttle_rounds may ask for.</summary>
    public const uint MaxAutoConvergeMaxThrottleRounds = 1000;

    /// <summary>downtime_limit (pre-copy only, at least downtime_target; 0 = none) and the auto-converge ending (pre-copy and hybrid; rounds default 3).</summary>
    private static void ValidatePreCopyEnding(Strategy strategy, MigrationLimits limits)
    {
        bool preCopy = strategy == Strategy.PreCopy, hybrid = strategy == Strategy.Hybrid;
        if (limits.DowntimeLimit is { } set)
        {
            var limit = set.ToTimeSpan();
            var target = limits.DowntimeTarget.ToTimeSpan();
            if (limit < TimeSpan.Zero)
                throw FabricException.Invalid($"limits.downtime_limit must not be negative (0 or unset: no limit), was {limit.TotalMilliseconds} ms.");
            if (limit == TimeSpan.Zero) limits.DowntimeLimit = null;
            else if (!preCopy)
                throw FabricException.Invalid($"limits.downtime_limit is only for pre-copy, not {NameOf(strategy)}" +
                    (hybrid ? " (hybrid hands what does not fit the downtime target to post-copy instead of failing)." : "."));
            else if (limit < target)
                throw FabricException.Invalid(
                    $"limits.downtime_limit ({limit.TotalMilliseconds} ms) must be at least limits.downtime_target ({target.TotalMilliseconds} ms).");
        }
        if (!preCopy && !hybrid)
        {
            if (limits.AutoConvergeMaxThrottleRounds != 0 || limits.AutoConvergeTailSlow)
                throw FabricException.Invalid(
                    $"limits.auto_converge_max_throttle_rounds and limits.auto_converge_tail_slow are only for pre-copy and hybrid, not {NameOf(strategy)}.");
            return;
        }
        if (limits.AutoConvergeMaxThrottleRounds == 0) limits.AutoConvergeMaxThrottleRounds = (uint)new PreCopyOptions().AutoConvergeMaxThrottleRounds;
        if (limits.AutoConvergeMaxThrottleRounds > MaxAutoConvergeMaxThrottleRounds)
            throw FabricException.Invalid(
                $"limits.auto_converge_max_throttle_rounds must be within 1..{MaxAutoConvergeMaxThrottleRounds} (0: default 3), was {limits.AutoConvergeMaxThrottleRounds}.");
    }

    /// <summary>sub_hosts: required and well formed for split and scatter-gather, absent otherwise.</summary>
    private static void ValidateSubHosts(StartMigrationRequest request)
    {
        var subs = request.SubHosts;
        string what = request.Strategy == Strategy.Split ? "sub-host" : "intermediate";
        if (!IsMultiHost(request.Strategy))
        {
            if (subs.Count > 0)
                throw FabricException.Invalid($"sub_hosts are only for split and scatter-gather, not {NameOf(request.Strategy)}.");
            return;
        }
        if (subs.Count == 0)
            throw FabricException.Invalid(request.Strategy == Strategy.Split
                ? "sub_hosts is required for split: name at least one sub-host to hold the part of the VM the main host (destination) has no room for."
                : "sub_hosts is required for scatter-gather: name at least one intermediate host to scatter the VM to.");
        if (subs.Count > MaxSubHosts)
            throw FabricException.Invalid($"sub_hosts names {subs.Count} hosts; at most {MaxSubHosts} are supported.");
        for (int i = 0; i < subs.Count; i++)
        {
            string s = subs[i];
            if (s.Length == 0) throw FabricException.Invalid($"sub_hosts[{i}] is empty; name a host.");
            if (s == request.Destination)
                throw FabricException.Invalid($"sub_hosts[{i}] '{s}' is the destination; a{(what == "intermediate" ? "n" : "")} {what} must be another host.");
            for (int j = 0; j < i; j++)
                if (subs[j] == s) throw FabricException.Invalid($"sub_hosts names '{s}' twice (at {j} and {i}); each {what} must be a different host.");
        }
    }

    // Post-copy faults ride the agent's data-channel listener too (the fault channel, QEMU's postcopy-preempt shape) when its pages do.
    private static RemoteFaultTransport Faults(DataChannel dataChannel) => dataChannel == DataChannel.Tcp ? RemoteFaultTransport.Tcp : RemoteFaultTransport.Grpc;

    /// <summary>The strategy object for a validated request and its plan; its pages travel on <paramref name="dataChannel"/> (the source agent's HostAgentOptions.DataChannel).</summary>
    public static MigrationStrategy Create(StartMigrationRequest request, MigrationPlan plan, DataChannel dataChannel = DataChannel.Tcp)
    {
        var limits = request.Limits;
        T Common<T>(T o) where T : MigrationOptions
        {
            o.DataChannel = dataChannel;
            o.Streams = (int)limits.Streams;
            if (limits.BandwidthBytesPerSecond > 0) o.BandwidthCap = (long)limits.BandwidthBytesPerSecond;
            if (limits.Deadline is { } d && d.ToTimeSpan() > TimeSpan.Zero) o.Deadline = d.ToTimeSpan();
            return o;
        }
        // A request persisted before these limits existed has them unset: the options' defaults stand.
        T Ending<T>(T o) where T : PreCopyOptions
        {
            if (limits.AutoConvergeMaxThrottleRounds > 0) o.AutoConvergeMaxThrottleRounds = (int)limits.AutoConvergeMaxThrottleRounds;
            o.AutoConvergeTailSlow = limits.AutoConvergeTailSlow;
            return o;
        }
        return request.Strategy switch
        {
            Strategy.PreCopy => new PreCopy(Common(Ending(new PreCopyOptions
            {
                DowntimeTarget = limits.DowntimeTarget.ToTimeSpan(),
                MaxRounds = (int)limits.MaxRounds,
                AutoConverge = !limits.DisableAutoConverge,
                DowntimeLimit = limits.DowntimeLimit is { } cap && cap.ToTimeSpan() > TimeSpan.Zero ? cap.ToTimeSpan() : null,
            }))),
            Strategy.PostCopy => new PostCopy(Common(new PostCopyOptions { FaultTransport = Faults(dataChannel) })),
            Strategy.Hybrid => new Hybrid(Common(Ending(new HybridOptions
            {
                DowntimeTarget = limits.DowntimeTarget.ToTimeSpan(),
                PreCopyRounds = (int)limits.HybridPrecopyRounds,
                AutoConverge = !limits.DisableAutoConverge,
                FaultTransport = Faults(dataChannel),
            }))),
            Strategy.VmemDirect or Strategy.NaiveSwap or Strategy.VmemDevirtualize => new VMemDirect(Common(new VMemDirectOptions
            {
                Kind = request.Strategy switch
                {
                    Strategy.NaiveSwap => VirtualizationKind.NaiveSwap,
                    Strategy.VmemDevirtualize => VirtualizationKind.Devirtualize,
                    _ => VirtualizationKind.VMemDirect,
                },
                DowntimeTarget = limits.DowntimeTarget.ToTimeSpan(),
                MaxRounds = (int)limits.MaxRounds,
                AutoConverge = !limits.DisableAutoConverge,
            })),
            Strategy.Split => new Split(Common(new SplitOptions
            {
                SubHosts = [.. plan.Others.Select(o => new Uri(o.Endpoint))],
                MainBudgetPages = plan.Destination.PagesPlanned,
                // Dealt evenly, uncapped: SplitPlan reads the access bits in two passes and a page whose bit a demand
                // monitor clears in between is counted twice, which overflows exact caps (seen: "full at page 6204").
                SubHostBudgetPages = null,
                DowntimeTarget = limits.DowntimeTarget.ToTimeSpan(),
                SplitMaxRounds = (int)Math.Min(limits.MaxRounds, 8),
            })),
            Strategy.ScatterGather => new ScatterGather(Common(new ScatterGatherOptions
            {
                Intermediates = [.. plan.Others.Select(o => new Uri(o.Endpoint))],
                DowntimeTarget = limits.DowntimeTarget.ToTimeSpan(),
                ScatterMaxRounds = (int)Math.Min(limits.MaxRounds, 8),
            })),
            _ => throw new FabricException(StatusCode.Unimplemented, $"strategy {NameOf(request.Strategy)} is not implemented yet."),
        };
    }
}
