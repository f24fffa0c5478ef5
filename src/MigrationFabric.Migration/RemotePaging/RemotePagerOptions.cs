using MigrationFabric.Migration.MultiHost;
using MigrationFabric.Rpc.Client;

namespace MigrationFabric.Migration.RemotePaging;

/// <summary>How a split VM's main host pages to and from its sub-hosts.</summary>
public sealed class RemotePagerOptions
{
    /// <summary>Pages the main host may hold in RAM (its share of the VM); above it, faults page out to a sub-host first. Required.</summary>
    public long BudgetPages { get; set; }

    /// <summary>Pages written to a sub-host in one StorePages call when the share is full. Default 64.</summary>
    public int PageOutBatch { get; set; } = 64;

    /// <summary>Pages fetched with a faulted one in the same RemotePages call: the next Remote pages held by the same sub-host, looked for within 4x this many pages after the fault. 0 turns prefetch off. Default 16.</summary>
    public int Prefetch { get; set; } = 16;

    /// <summary>Pages each sub-host may hold for this VM, in the map's sub-host order (page-outs go to the sub-host with the most room). Default null: no limit (page-outs go to the one holding the fewest).</summary>
    public IReadOnlyList<long>? SubHostBudgetPages { get; set; }

    /// <summary>Called with the map after each page-out batch is stored at its sub-host and before the main frees those pages (persist it there: see MultiHost/README.md, "Memory map"); a throw cancels the page-out. Default null.</summary>
    public Func<MemoryMap, CancellationToken, ValueTask>? MapChanged { get; set; }

    /// <summary>Per-page checksum of the pages stored at and fetched from the sub-hosts (StorePages and RemotePages name it; the sub-host follows). Default Xxh3.</summary>
    public Memory.Integrity.PageDigestKind Checksum { get; set; } = Memory.Integrity.PageDigestKind.Xxh3;

    /// <summary>How long a fetch or store may take before the sub-host is declared lost. Default 10 s.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Options of the channels to the sub-hosts. Default: RpcChannelOptions defaults.</summary>
    public RpcChannelOptions? Channel { get; set; }

    /// <summary>Throws naming the first invalid option for a VM of <paramref name="pageCount"/> pages and <paramref name="subHosts"/> sub-hosts.</summary>
    public void Validate(long pageCount, int subHosts = 1)
    {
        if (BudgetPages <= 0 || BudgetPages > pageCount)
            throw new ArgumentException($"{nameof(RemotePagerOptions)}.{nameof(BudgetPages)} must be within 1..{pageCount}, was {BudgetPages}.");
        if (PageOutBatch is < 1 or > 1024)
            throw new ArgumentException($"{nameof(RemotePagerOptions)}.{nameof(PageOutBatch)} must be within 1..1024, was {PageOutBatch}.");
        if (PageOutBatch >= BudgetPages)
            throw new ArgumentException($"{nameof(RemotePagerOptions)}.{nameof(PageOutBatch)} ({PageOutBatch}) must be below {nameof(BudgetPages)} ({BudgetPages}).");
        if (Prefetch is < 0 or > 1023)
            throw new ArgumentException($"{nameof(RemotePagerOptions)}.{nameof(Prefetch)} must be within 0..1023, was {Prefetch}.");
        if (Prefetch >= BudgetPages - PageOutBatch)
            throw new ArgumentException($"{nameof(RemotePagerOptions)}.{nameof(Prefetch)} ({Prefetch}) must be below {nameof(BudgetPages)} - {nameof(PageOutBatch)} ({BudgetPages - PageOutBatch}).");
        if (SubHostBudgetPages is not null)
        {
            if (SubHostBudgetPages.Count != subHosts)
                throw new ArgumentException($"{nameof(RemotePagerOptions)}.{nameof(SubHostBudgetPages)} has {SubHostBudgetPages.Count} budgets for {subHosts} sub-hosts; give one per sub-host or none.");
            for (int k = 0; k < SubHostBudgetPages.Count; k++)
                if (SubHostBudgetPages[k] <= 0)
                    throw new ArgumentException($"{nameof(RemotePagerOptions)}.{nameof(SubHostBudgetPages)}[{k}] must be positive, was {SubHostBudgetPages[k]}.");
        }
        if (Timeout <= TimeSpan.Zero)
            throw new ArgumentException($"{nameof(RemotePagerOptions)}.{nameof(Timeout)} must be positive, was {Timeout}.");
        if (Checksum is not (Memory.Integrity.PageDigestKind.Xxh64 or Memory.Integrity.PageDigestKind.Xxh3))
            throw new ArgumentException($"{nameof(RemotePagerOptions)}.{nameof(Checksum)} must be Xxh64 or Xxh3, was {(int)Checksum}.");
    }
}
