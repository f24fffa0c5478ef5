using MigrationFabric.Memory.Swap;
using MigrationFabric.Migration.DataPlane;

namespace MigrationFabric.Migration.PrivateMemory;

/// <summary>Places arriving pages through a destination's private virtual memory: directly into its share or its swap slot, retransfers in place (seed 004's direct memory transfer).</summary>
/// <remarks>In <see cref="PagingMode.Naive"/> the same call behaves as plain OS swap (pages out when full, pages in to apply a retransfer): the naive baseline runs the same code path.</remarks>
public sealed class PrivateMemoryPlacement(PrivateVirtualMemory memory) : IPagePlacement
{
    private long _toMemory, _toSwap;

    /// <summary>The destination's private virtual memory.</summary>
    public PrivateVirtualMemory Memory { get; } = memory ?? throw new ArgumentNullException(nameof(memory));

    /// <summary>Pages (first copies and retransfers) that went to the physical share.</summary>
    public long PlacedInMemory => Volatile.Read(ref _toMemory);

    /// <summary>Pages (first copies and retransfers) that went to the private swap file.</summary>
    public long PlacedInSwap => Volatile.Read(ref _toSwap);

    /// <inheritdoc/>
    public void Place(long page, ReadOnlySpan<byte> contents)
    {
        if (Memory.PlacePage(page, contents) == PlacementTarget.Memory) Interlocked.Increment(ref _toMemory);
        else Interlocked.Increment(ref _toSwap);
    }
}
