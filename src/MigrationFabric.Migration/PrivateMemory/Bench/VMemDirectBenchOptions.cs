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
