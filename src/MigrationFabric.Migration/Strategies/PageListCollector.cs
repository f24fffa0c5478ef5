using MigrationFabric.Memory.Tracking;

namespace MigrationFabric.Migration.Strategies;

/// <summary>Collects the pages a bitmap harvest visits into a caller's array (no allocation per page).</summary>
internal struct PageListCollector(long[] pages) : IPageVisitor
{
    /// <summary>Pages collected so far.</summary>
    public int Count;

    public void Visit(long page) => pages[Count++] = page;
}
