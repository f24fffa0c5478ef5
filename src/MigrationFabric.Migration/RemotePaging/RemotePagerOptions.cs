using MigrationFabric.Rpc.Client;

namespace MigrationFabric.Migration.RemotePaging;

/// <summary>How a split VM's main host pages to and from its sub-host.</summary>
public sealed class RemotePagerOptions
{
    /// <summary>Pages the main host may hold in RAM (its share of the VM); above it, faults page out to the sub-host first. Required.</summary>
    public long BudgetPages { get; set; }

    /// <summary>Pages written to the sub-host in one StorePages call when the share is full. Default 64.</summary>
    public int PageOutBatch { get; set; } = 64;

    /// <summary>How long a fetch or store may take before the sub-host is declared lost. Default 10 s.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Options of the channel to the sub-host. Default: RpcChannelOptions defaults.</summary>
    public RpcChannelOptions? Channel { get; set; }

    /// <summary>Throws naming the first invalid option for a VM of <paramref name="pageCount"/> pages.</summary>
    public void Validate(long pageCount)
    {
        if (BudgetPages <= 0 || BudgetPages > pageCount)
            throw new ArgumentException($"{nameof(RemotePagerOptions)}.{nameof(BudgetPages)} must be within 1..{pageCount}, was {BudgetPages}.");
        if (PageOutBatch is < 1 or > 1024)
            throw new ArgumentException($"{nameof(RemotePagerOptions)}.{nameof(PageOutBatch)} must be within 1..1024, was {PageOutBatch}.");
        if (PageOutBatch >= BudgetPages)
            throw new ArgumentException($"{nameof(RemotePagerOptions)}.{nameof(PageOutBatch)} ({PageOutBatch}) must be below {nameof(BudgetPages)} ({BudgetPages}).");
        if (Timeout <= TimeSpan.Zero)
            throw new ArgumentException($"{nameof(RemotePagerOptions)}.{nameof(Timeout)} must be positive, was {Timeout}.");
    }
}
