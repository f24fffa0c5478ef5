using MigrationFabric.Memory.Integrity;
using MigrationFabric.Memory.Pages;

namespace MigrationFabric.Migration.DataPlane;

/// <summary>A page reader whose reads wait on the network (a split VM's sub-hosts): the page streams and the integrity check await it instead of blocking a pool thread.</summary>
/// <remarks>Its synchronous <see cref="IPageContentReader.ReadPage"/> stays for callers that are synchronous themselves (<see cref="PageDigest.OfMemory"/>).</remarks>
public interface IAsyncPageContentReader : IPageContentReader
{
    /// <summary>Copies page <paramref name="page"/>, currently <paramref name="residency"/> (possibly stale), into <paramref name="destination"/> (4 KiB).</summary>
    ValueTask ReadPageAsync(PageNumber page, PageResidency residency, Memory<byte> destination, CancellationToken cancellationToken);
}
