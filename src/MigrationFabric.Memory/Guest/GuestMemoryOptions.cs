namespace MigrationFabric.Memory.Guest;

/// <summary>How a VM's guest memory is laid out on this host.</summary>
public sealed class GuestMemoryOptions
{
    /// <summary>Guest-physical memory size in bytes; a positive multiple of 4 KiB, at most <see cref="MaxSizeBytes"/>. Default 64 MiB.</summary>
    public long SizeBytes { get; set; } = 64L << 20;

    /// <summary>Most resident pages this VM should hold (its physical share); pagers read it, nothing enforces it here. Default: every page.</summary>
    public long? ResidentBudgetPages { get; set; }

    /// <summary>Let the kernel back the mapping with transparent huge pages (faster sweeps, coarser RSS). Default false, so RSS is counted in 4 KiB pages.</summary>
    public bool TransparentHugePages { get; set; }

    /// <summary>Upper bound on <see cref="SizeBytes"/>: 1 TiB.</summary>
    public const long MaxSizeBytes = 1L << 40;

    /// <summary>Throws an exception naming the first invalid option.</summary>
    public void Validate()
    {
        if (SizeBytes <= 0 || (SizeBytes & (Pages.Page.Size - 1)) != 0)
            throw new ArgumentException($"GuestMemoryOptions.SizeBytes must be a positive multiple of {Pages.Page.Size} bytes, was {SizeBytes}.", nameof(SizeBytes));
        if (SizeBytes > MaxSizeBytes)
            throw new ArgumentException($"GuestMemoryOptions.SizeBytes {SizeBytes} exceeds the maximum of {MaxSizeBytes} bytes (1 TiB).", nameof(SizeBytes));
        if (ResidentBudgetPages is { } b && (b <= 0 || b > SizeBytes / Pages.Page.Size))
            throw new ArgumentException($"GuestMemoryOptions.ResidentBudgetPages must be within 1..{SizeBytes / Pages.Page.Size}, was {b}.", nameof(ResidentBudgetPages));
    }
}
