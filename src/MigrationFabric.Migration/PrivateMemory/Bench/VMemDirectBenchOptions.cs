namespace MigrationFabric.Migration.PrivateMemory.Bench;

/// <summary>Options of <see cref="VMemDirectBench"/>: seed 004's experiment scaled to one machine.</summary>
public sealed class VMemDirectBenchOptions
{
    /// <summary>Every destination kind the bench knows: naive swap, VMemDirect (method 1), VMemDirect (method 2), split (main + 1 sub-host), ideal.</summary>
    public static IReadOnlyList<string> KnownKinds { get; } = ["naive", "vmem-direct", "vmem-direct-m2", "split", "ideal"];

    /// <summary>Every workload the bench knows: idle, active (memory benchmark during migration), kv (key-value store, ops/s timeline).</summary>
    public static IReadOnlyList<string> KnownWorkloads { get; } = ["idle", "active", "kv"];

    /// <summary>The VM's size in MiB. Default 1024.</summary>
    public long SizeMib { get; set; } = 1024;

    /// <summary>The destination's physical budget in MiB (the private share, the split main host's budget); must be below the VM's size. Default 256.</summary>
    public long BudgetMib { get; set; } = 256;

    /// <summary>Destination kinds to run, in order. Default naive, vmem-direct, split, ideal (the paper's four).</summary>
    public IReadOnlyList<string> Kinds { get; set; } = ["naive", "vmem-direct", "split", "ideal"];

    /// <summary>Workloads to run for each kind. Default idle, active, kv.</summary>
    public IReadOnlyList<string> Workloads { get; set; } = ["idle", "active", "kv"];

    /// <summary>How long the memory benchmark sweeps the whole VM at the destination after migration (idle and active runs). Default 3 s.</summary>
    public TimeSpan MeasureAfter { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>How long the key-value store runs on the source before the migration starts. Default 2 s.</summary>
    public TimeSpan KvBefore { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>How long the key-value store runs at the destination after the resume. Default 10 s (the paper's memcached recovered in ~10 s).</summary>
    public TimeSpan KvAfter { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Pre-copy rounds before the stop-and-copy, the same for every kind. Default 5.</summary>
    public int MaxRounds { get; set; } = 5;

    /// <summary>Directory of the private swap files; null: the temp directory. Default null.</summary>
    public string? SwapDirectory { get; set; }

    /// <summary>Swap I/O bypasses the page cache (O_DIRECT), so paging costs what the disk costs, as the paper's NVMe swap and Linux swap do. Default false.</summary>
    public bool DirectIo { get; set; }

    /// <summary>Seed 004's migration link: 10 GbE, in megabits per second.</summary>
    public const double PaperLinkMbps = 10_000;

    /// <summary>Seed 004's swap device, a Samsung 970 PRO 1 TB: its datasheet's sequential write rate in MB/s (the slides name the device, not its rate).</summary>
    public const double PaperSwapWriteMBps = 2_700;

    /// <summary>The paper's link rate over its swap write rate (1250 MB/s / 2700 MB/s = 0.46): the network was the slower side.</summary>
    public static double PaperLinkToSwapWrite => PaperLinkMbps / 8 / PaperSwapWriteMBps;

    /// <summary>Cap of the migration link in megabits per second, the same for every kind (the migration's bandwidth cap; split: each destination link); 0: uncapped; null: <see cref="PaperLinkToSwapWrite"/> times this machine's swap write rate, measured before the runs. Default null.</summary>
    public double? LinkMbps { get; set; }

    /// <summary>Naive only: the destination's device emulator memory in MiB, paged out by the host's swap while the VM arrives and paged in at the resume (seed 004's extra naive downtime; the slides give no size, this is an assumption); 0: not modelled. Default 32.</summary>
    public long DeviceEmulatorMib { get; set; } = 32;

    /// <summary>VMemDirect: completed staged chunks are written by the pager's writer thread (true) or by the stream that placed their last page (false, the behaviour before 2026-11-22 session 3), for before/after comparisons. Default true.</summary>
    public bool AsyncPlacementWrites { get; set; } = true;

    /// <summary>VMemDirect: MiB of the budget first copies leave for retransferred (hot) pages, which then go into memory instead of being updated in swap (<c>PrivateVirtualMemoryOptions.HotReservePages</c>); 0: off. Default 0 (32 MiB made the key-value store slower after the resume in two loaded pairs: bench/RESULTS.md, session 3).</summary>
    public long HotReserveMib { get; set; }

    /// <summary>What carries every kind's page streams (split: the sub-host's too): TCP data channels, as between host agents (HostAgentOptions.DataChannel), or gRPC PageStream calls. Default Tcp.</summary>
    public DataPlane.DataChannel DataChannel { get; set; } = DataPlane.DataChannel.Tcp;

    /// <summary>Before each migration (outside its time), preallocate what the destination kind reserves as fixed RAM by design (<see cref="VMemDirectBench.PreallocationOf"/>); false: every page's RAM comes at its first write, as before 2026-11-22 session 4. Default true.</summary>
    public bool Preallocate { get; set; } = true;

    /// <summary>Naive and VMemDirect write their swap files' blocks when they are created, as a swap device's are written (<c>PrivateVirtualMemoryOptions.PrewriteSwapFile</c>); false leaves fallocate's unwritten extents, which the first writes convert. Default true.</summary>
    public bool PrewriteSwap { get; set; } = true;

    /// <summary>VMemDirect's placement writers write through io_uring rings with the staging buffers registered (<c>PrivateVirtualMemoryOptions.PlacementWritesOnIoUring</c>); false writes with pwrite. Default true.</summary>
    public bool PlacementRings { get; set; } = true;

    /// <summary>How many times every workload runs with every kind, the repetitions interleaved (each starts the kinds one further along), so the report can take medians of each repetition's ratios rather than trust one run on a shared machine. Default 1.</summary>
    public int Repeat { get; set; } = 1;

    /// <summary>The most repetitions <see cref="Repeat"/> takes.</summary>
    public const int MaxRepeat = 20;

    /// <summary>Run every kind once on a small VM before the measured runs, so the first measured kind does not pay for the JIT alone. Default true.</summary>
    public bool WarmUp { get; set; } = true;

    /// <summary>Throws an <see cref="ArgumentException"/> naming the first option that is wrong.</summary>
    public void Validate()
    {
        if (SizeMib < 8 || SizeMib > 1L << 20)
            throw new ArgumentException($"VMemDirectBenchOptions.SizeMib (--size-mib) must be within 8..{1L << 20}, was {SizeMib}.", nameof(SizeMib));
        if (BudgetMib < 4 || BudgetMib >= SizeMib)
            throw new ArgumentException($"VMemDirectBenchOptions.BudgetMib (--budget-mib) must be at least 4 and below the VM's size ({SizeMib} MiB), was {BudgetMib}.", nameof(BudgetMib));
        CheckNames(Kinds, KnownKinds, nameof(Kinds), "--kinds");
        CheckNames(Workloads, KnownWorkloads, nameof(Workloads), "--workloads");
        if (MeasureAfter <= TimeSpan.Zero)
            throw new ArgumentException($"VMemDirectBenchOptions.MeasureAfter must be positive, was {MeasureAfter}.", nameof(MeasureAfter));
        if (KvBefore <= TimeSpan.Zero || KvAfter <= TimeSpan.Zero)
            throw new ArgumentException($"VMemDirectBenchOptions.KvBefore and KvAfter must be positive, were {KvBefore} and {KvAfter}.", nameof(KvAfter));
        if (MaxRounds < 1)
            throw new ArgumentException($"VMemDirectBenchOptions.MaxRounds must be at least 1, was {MaxRounds}.", nameof(MaxRounds));
        if (DeviceEmulatorMib < 0 || DeviceEmulatorMib >= BudgetMib)
            throw new ArgumentException($"VMemDirectBenchOptions.DeviceEmulatorMib (--emulator-mib) must be within 0..{BudgetMib - 1} (below the budget), was {DeviceEmulatorMib}.", nameof(DeviceEmulatorMib));
        if (HotReserveMib < 0 || HotReserveMib > BudgetMib / 2)
            throw new ArgumentException($"VMemDirectBenchOptions.HotReserveMib (--hot-reserve-mib) must be within 0..{BudgetMib / 2} (half the budget), was {HotReserveMib}.", nameof(HotReserveMib));
        if (!Enum.IsDefined(DataChannel))
            throw new ArgumentException($"VMemDirectBenchOptions.DataChannel (--data-channel) must be Grpc or Tcp, was {(int)DataChannel}.", nameof(DataChannel));
        if (LinkMbps is { } link && (!double.IsFinite(link) || link < 0))
            throw new ArgumentException($"VMemDirectBenchOptions.LinkMbps (--link-mbps) must be 0 (uncapped) or a positive number of megabits per second, was {link}.", nameof(LinkMbps));
        if (Repeat < 1 || Repeat > MaxRepeat)
            throw new ArgumentException($"VMemDirectBenchOptions.Repeat (--repeat) must be within 1..{MaxRepeat}, was {Repeat}.", nameof(Repeat));
        if (SwapDirectory is { } d && !Directory.Exists(d))
            throw new ArgumentException($"VMemDirectBenchOptions.SwapDirectory '{d}' does not exist.", nameof(SwapDirectory));
    }

    private static void CheckNames(IReadOnlyList<string>? names, IReadOnlyList<string> known, string option, string flag)
    {
        if (names is null || names.Count == 0)
            throw new ArgumentException($"VMemDirectBenchOptions.{option} ({flag}) must name at least one of {string.Join(", ", known)}.", option);
        foreach (var n in names)
        {
            if (!known.Contains(n))
                throw new ArgumentException($"VMemDirectBenchOptions.{option} ({flag}): unknown '{n}' (known: {string.Join(", ", known)}).", option);
        }
    }
}
