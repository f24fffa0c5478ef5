namespace MigrationFabric.Host.Balancing;

using MigrationFabric.Memory.Balancing;

/// <summary>How RebalanceMemory divides a host's memory among its VMs (VMMB); validated with a message naming the option.</summary>
public sealed class HostRebalanceOptions
{
    /// <summary>How the targets are computed (headroom over demand, whether spare memory is handed out). Default: MemoryRebalancerOptions' defaults (10% headroom, spare handed out by weight).</summary>
    public MemoryRebalancerOptions Targets { get; set; } = new();

    /// <summary>The smallest share a rebalance gives an over-committed VM, bytes: room for its pager's free reserve and a chunk paged in. Default 4 MiB.</summary>
    public long MinimumShareBytes { get; set; } = 4L << 20;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid option.</summary>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Targets, "HostRebalanceOptions.Targets");
        Targets.Validate();
        if (MinimumShareBytes <= 0 || MinimumShareBytes % 4096 != 0)
            throw new ArgumentException($"HostRebalanceOptions.MinimumShareBytes must be a positive multiple of 4096, was {MinimumShareBytes}.", nameof(MinimumShareBytes));
    }
}
