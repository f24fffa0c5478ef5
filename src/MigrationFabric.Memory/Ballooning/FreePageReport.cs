using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Tracking;

namespace MigrationFabric.Memory.Ballooning;

/// <summary>The guest's report of its free pages: those it never touched (Zero) and those its workload explicitly freed.</summary>
/// <remarks>
/// The workloads are the guest OS here, so they call <see cref="ReportFree"/> when they release memory and
/// <see cref="ReportInUse"/> before reusing it. A freed page keeps its stale bytes until the balloon takes it.
/// </remarks>
public sealed class FreePageReport
{
    private readonly GuestMemory _memory;
    private readonly AtomicPageBitmap _freed;

    /// <summary>Creates an empty report for <paramref name="memory"/>.</summary>
    public FreePageReport(GuestMemory memory)
    {
        ArgumentNullException.ThrowIfNull(memory);
        _memory = memory;
        _freed = new AtomicPageBitmap(memory.PageCount);
    }

    /// <summary>The guest no longer needs the contents of pages [first, first + count).</summary>
    public void ReportFree(PageNumber first, long count = 1)
    {
        _memory.CheckRange(first, count);
        for (long p = first; p < first + count; p++) _freed.Set(p);
    }

    /// <summary>The guest is about to use pages [first, first + count) again.</summary>
    public void ReportInUse(PageNumber first, long count = 1)
    {
        _memory.CheckRange(first, count);
        for (long p = first; p < first + count; p++) _freed.TestAndClear(p);
    }

    /// <summary>Whether the guest has reported the page free (explicitly freed, or never touched).</summary>
    public bool IsFree(PageNumber page)
        => _memory.GetResidency(page) == PageResidency.Zero || _freed.IsSet(page);

    /// <summary>Pages explicitly freed and not yet reused.</summary>
    public long ExplicitlyFreedCount => _freed.CountSet();

    /// <summary>All free pages: never touched plus explicitly freed ones that still hold memory.</summary>
    public long FreeCount()
    {
        var v = new ResidentFreeCounter(_memory);
        _freed.ForEachSet(ref v);
        return _memory.CountOf(PageResidency.Zero) + v.Count;
    }

    internal bool TakeIfFreed(long page) => _freed.TestAndClear(page);

    internal bool IsExplicitlyFreed(long page) => _freed.IsSet(page);

    private struct ResidentFreeCounter(GuestMemory memory) : IPageVisitor
    {
        public long Count;
        public void Visit(long page)
        {
            if (memory.GetResidency(page) != PageResidency.Zero) Count++;
        }
    }
}
