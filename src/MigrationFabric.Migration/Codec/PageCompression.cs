namespace MigrationFabric.Migration.Codec;

/// <summary>How page payloads are compressed on the wire.</summary>
public enum PageCompression
{
    /// <summary>Pages travel as their 4096 bytes (zero pages as a flag only).</summary>
    None,

    /// <summary>Each non-zero page deflated on its own; pages that do not shrink travel raw.</summary>
    Deflate,
}
