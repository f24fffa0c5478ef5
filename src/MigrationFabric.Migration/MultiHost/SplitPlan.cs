using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Tracking;

namespace MigrationFabric.Migration.MultiHost;

/// <summary>Which pages of a VM go to the main host (runs the vCPUs) and which to the sub-host: the main takes the hottest written pages up to its budget.</summary>
/// <remarks>
/// Hot means accessed since the MMU's access bits were last harvested; then the other written pages in page order.
/// Untouched (zero) pages stay with the main: they take no RAM until written. The plan is fixed for the whole
/// migration so a retransfer goes where the first copy went.
/// </remarks>
public sealed class SplitPlan
{
    private readonly AtomicPageBitmap _onSub;

    private SplitPlan(AtomicPageBitmap onSub, long mainPages, long subPages)
    {
        _onSub = onSub;
        MainPages = mainPages;
        SubPages = subPages;
    }

    /// <summary>Written pages planned for the main host.</summary>
    public long MainPages { get; }

    /// <summary>Pages planned for the sub-host.</summary>
    public long SubPages { get; }

    /// <summary>Whether page <paramref name="page"/> goes to the sub-host.</summary>
    public bool IsOnSub(long page) => _onSub.IsSet(page);

    /// <summary>Plans <paramref name="memory"/> for a main host of <paramref name="mainBudgetPages"/> pages.</summary>
    public static SplitPlan Create(GuestMemory memory, long mainBudgetPages)
    {
        ArgumentNullException.ThrowIfNull(memory);
        if (mainBudgetPages <= 0) throw new ArgumentOutOfRangeException(nameof(mainBudgetPages), mainBudgetPages, "the main host's budget must be positive.");
        var onSub = new AtomicPageBitmap(memory.PageCount);
        long main = 0, sub = 0;
        for (int pass = 0; pass < 2; pass++)
            for (long p = 0; p < memory.PageCount; p++)
            {
                if (memory.GetResidency(p) is PageResidency.Zero or PageResidency.Ballooned) continue;
                bool hot = memory.Accessed.IsSet(p);
                if (hot != (pass == 0)) continue;
                if (main < mainBudgetPages) main++;
                else { onSub.Set(p); sub++; }
            }
        return new SplitPlan(onSub, main, sub);
    }
}
