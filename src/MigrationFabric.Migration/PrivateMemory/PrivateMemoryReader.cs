using MigrationFabric.Memory.Integrity;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Swap;

namespace MigrationFabric.Migration.PrivateMemory;

/// <summary>Reads a VM's pages out of its private virtual memory wherever they live (share or swap) without paging them in: memory-devirtualizing migration's source side and the integrity check's digests.</summary>
public sealed class PrivateMemoryReader(PrivateVirtualMemory memory) : IPageContentReader
{
    /// <summary>The private virtual memory read.</summary>
    public PrivateVirtualMemory Memory { get; } = memory ?? throw new ArgumentNullException(nameof(memory));

    /// <inheritdoc/>
    /// <remarks>The residency seen by the caller may be stale (a page-out ran since); the read takes the page's chunk lock and reads where it is now.</remarks>
    public void ReadPage(PageNumber page, PageResidency residency, Span<byte> destination) => Memory.ReadPage(page.Value, destination);
}
