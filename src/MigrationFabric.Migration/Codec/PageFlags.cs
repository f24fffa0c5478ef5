namespace MigrationFabric.Migration.Codec;

/// <summary>Per-page flag bits of PageBatch.flags (the PageFlag enum of pages.proto).</summary>
public static class PageFlags
{
    /// <summary>A plain page: 4096 bytes in the payload.</summary>
    public const byte None = 0;

    /// <summary>All zeroes: nothing in the payload.</summary>
    public const byte Zero = 1;

    /// <summary>A deflate stream of PageBatch.lengths[i] bytes in the payload.</summary>
    public const byte Compressed = 2;

    /// <summary>A page sent before and re-sent because it was dirtied since.</summary>
    public const byte Retransfer = 4;

    /// <summary>Sent because a remote fault asked for it.</summary>
    public const byte Urgent = 8;

    /// <summary>Every bit a receiver understands.</summary>
    public const byte Known = Zero | Compressed | Retransfer | Urgent;
}
