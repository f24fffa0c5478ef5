namespace MigrationFabric.Migration.DataPlane;

/// <summary>Where a destination puts an arriving page instead of guest RAM: e.g. private virtual memory, which writes it directly to memory or to its swap slot.</summary>
/// <remarks>
/// Called on a stream's applier thread with the page's verified bytes (4 KiB); a retransfer of a page placed
/// before calls it again and must update that copy in place. Pages of one migration arrive on several streams
/// at once, but a given page always on the same stream, so calls for one page never overlap.
/// </remarks>
public interface IPagePlacement
{
    /// <summary>Stores <paramref name="contents"/> as page <paramref name="page"/> of the incoming VM.</summary>
    void Place(long page, ReadOnlySpan<byte> contents);

    /// <summary>Puts RAM behind the fixed memory this placement holds by design, before the pages arrive (a destination's prepare); false if it holds none or the kernel cannot.</summary>
    /// <exception cref="InsufficientMemoryException">The host could not provide the RAM.</exception>
    bool Preallocate(CancellationToken cancellationToken) => false;

    /// <summary>Gives back what <see cref="Preallocate"/> set aside and no page took; called when the migration that preallocated it ends.</summary>
    void ReleasePreallocation() { }
}
