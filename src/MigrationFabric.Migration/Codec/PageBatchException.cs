namespace MigrationFabric.Migration.Codec;

/// <summary>A page batch is not well formed (counts disagree, a page number is out of range, the payload is short...).</summary>
public sealed class PageBatchFormatException(string message) : Exception(message);

/// <summary>A page's contents do not match the checksum sent with it.</summary>
public sealed class PageChecksumException(long page, ulong expected, ulong actual, Memory.Integrity.PageDigestKind kind = Memory.Integrity.PageDigestKind.Xxh64)
    : Exception($"page {page}: checksum mismatch (sent {kind.ToString().ToLowerInvariant()} {expected:x16}, received contents hash to {actual:x16}).")
{
    /// <summary>The page that arrived corrupted.</summary>
    public long Page { get; } = page;
}
