using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Tracking;

namespace MigrationFabric.Migration.MultiHost;

/// <summary>Which pages of a VM go to the main host (runs the vCPUs) and which to each sub-host: the main takes the hottest written pages up to its budget, the rest are dealt to the sub-hosts by their budgets.</summary>
/// <remarks>
/// Hot means accessed since the MMU's access bits were last harvested, or, for the pages a demand monitor samples (it
/// harvests their bits), seen accessed by it lately (<c>DemandMonitor.RecentAccess</c>); then the other written pages in
/// page order. Each page's hotness is read once, so a bit cleared meanwhile cannot count a page in both passes.
/// Untouched (zero) pages stay with the main: they take no RAM until written. The pages beyond the main's budget are
/// dealt in chunks of <see cref="ChunkPages"/> to the sub-host least full relative to its weight (its budget, or 1
/// each), skipping full ones, so the streams to every sub-host run at once and the map stays a few runs per chunk.
/// The plan is fixed for the whole migration so a retransfer goes where the first copy went.
/// </remarks>
public sealed class SplitPlan
{
    /// <summary>Consecutive sub-host pages dealt to one sub-host (1 MiB).</summary>
    public const int ChunkPages = 256;

    private readonly long[] _perHost;

    private SplitPlan(MemoryMap map, long[] perHost)
    {
        Map = map;
        _perHost = perHost;
    }

    /// <summary>The plan as a memory map (owner 0 = main, k = sub-host k - 1 of the list given).</summary>
    public MemoryMap Map { get; }

    /// <summary>Written pages planned for the main host.</summary>
    public long MainPages => _perHost[MemoryMap.Main];

    /// <summary>Pages planned for all sub-hosts together.</summary>
    public long SubPages
    {
        get
        {
            long n = 0;
            for (int k = 1; k < _perHost.Length; k++) n += _perHost[k];
            return n;
        }
    }

    /// <summary>Written pages planned for sub-host <paramref name="subHost"/> (0-based, in the order given).</summary>
    public long PagesOnSubHost(int subHost) => _perHost[subHost + 1];

    /// <summary>The host page <paramref name="page"/> goes to: <see cref="MemoryMap.Main"/> or a sub-host's index + 1.</summary>
    public int HostOf(long page) => Map.HostOf(page);

    /// <summary>Whether page <paramref name="page"/> goes to a sub-host.</summary>
    public bool IsOnSub(long page) => Map.HostOf(page) != MemoryMap.Main;

    /// <summary>Plans <paramref name="memory"/> for a main host of <paramref name="mainBudgetPages"/> pages and sub-hosts <paramref name="subHosts"/> with optional budgets <paramref name="subHostBudgetPages"/> (null: unlimited, dealt evenly).</summary>
    /// <param name="memory">The VM's memory at the source.</param>
    /// <param name="mainBudgetPages">Written pages the main takes.</param>
    /// <param name="subHosts">The sub-hosts' addresses.</param>
    /// <param name="subHostBudgetPages">Pages each sub-host may take; null: unlimited, dealt evenly.</param>
    /// <param name="recentAccess">Pages a demand monitor saw accessed lately (it clears the access bits it samples), counted hot too; null: the access bits alone.</param>
    /// <exception cref="ArgumentException">A budget is not positive, the budgets do not match the sub-hosts, <paramref name="recentAccess"/> is for another VM size, or the written pages do not fit all budgets together.</exception>
    public static SplitPlan Create(GuestMemory memory, long mainBudgetPages, IReadOnlyList<Uri> subHosts, IReadOnlyList<long>? subHostBudgetPages = null,
        AtomicPageBitmap? recentAccess = null)
    {
        ArgumentNullException.ThrowIfNull(memory);
        if (recentAccess is not null && recentAccess.PageCount != memory.PageCount)
            throw new ArgumentException($"the recent-access bitmap covers {recentAccess.PageCount} pages but the VM has {memory.PageCount}.", nameof(recentAccess));
        if (mainBudgetPages <= 0) throw new ArgumentOutOfRangeException(nameof(mainBudgetPages), mainBudgetPages, "the main host's budget must be positive.");
        var map = new MemoryMap(memory.PageCount, subHosts);
        int n = subHosts.Count;
        if (subHostBudgetPages is not null)
        {
            if (subHostBudgetPages.Count != n) throw new ArgumentException($"{n} sub-hosts but {subHostBudgetPages.Count} sub-host budgets.", nameof(subHostBudgetPages));
            for (int k = 0; k < n; k++)
                if (subHostBudgetPages[k] <= 0) throw new ArgumentException($"sub-host budget [{k}] must be positive, was {subHostBudgetPages[k]}.", nameof(subHostBudgetPages));
        }
        var perHost = new long[n + 1];
        // Hotness as read in the first pass; the second pass takes exactly the written pages the first left.
        var hotPages = new AtomicPageBitmap(memory.PageCount);
        int current = -1;
        int leftInChunk = 0;
        for (int pass = 0; pass < 2; pass++)
            for (long p = 0; p < memory.PageCount; p++)
            {
                if (memory.GetResidency(p) is PageResidency.Zero or PageResidency.Ballooned) continue;
                bool hot;
                if (pass == 0)
                {
                    hot = memory.Accessed.IsSet(p) || (recentAccess?.IsSet(p) ?? false);
                    if (hot) hotPages.Set(p);
                }
                else hot = hotPages.IsSet(p);
                if (hot != (pass == 0)) continue;
                if (perHost[MemoryMap.Main] < mainBudgetPages)
                {
                    perHost[MemoryMap.Main]++;
                    continue;
                }
                if (leftInChunk == 0 || (subHostBudgetPages is not null && perHost[current + 1] >= subHostBudgetPages[current]))
                {
                    current = LeastFull(perHost, subHostBudgetPages);
                    if (current < 0)
                        throw new ArgumentException($"the VM's written pages do not fit: the main's {mainBudgetPages} pages and the sub-hosts' budgets ({string.Join(", ", subHostBudgetPages!)}) are full at page {p}.");
                    leftInChunk = ChunkPages;
                }
                map.Assign(p, current + 1);
                perHost[current + 1]++;
                leftInChunk--;
            }
        return new SplitPlan(map, perHost);
    }

    /// <summary>The sub-host (0-based) with the lowest fill relative to its weight that still has room; -1 when all are full.</summary>
    private static int LeastFull(long[] perHost, IReadOnlyList<long>? budgets)
    {
        int best = -1;
        double bestFill = double.MaxValue;
        for (int k = 0; k < perHost.Length - 1; k++)
        {
            long held = perHost[k + 1];
            if (budgets is not null && held >= budgets[k]) continue;
            double fill = budgets is null ? held : (double)held / budgets[k];
            if (fill < bestFill)
            {
                bestFill = fill;
                best = k;
            }
        }
        return best;
    }
}
