using MigrationFabric.Contracts.V1;
using MigrationFabric.Memory.Integrity;

namespace MigrationFabric.Migration.Codec;

/// <summary>Maps the wire's ChecksumKind to the page digest it names, refusing kinds this build does not know.</summary>
public static class PageChecksums
{
    /// <summary>The digest kind <paramref name="kind"/> names; not set (UNSPECIFIED) is XXH64, as the contract says.</summary>
    /// <exception cref="UnsupportedChecksumException"><paramref name="kind"/> is not one this build computes.</exception>
    public static PageDigestKind FromWire(ChecksumKind kind) => kind switch
    {
        ChecksumKind.Unspecified or ChecksumKind.Xxh64 => PageDigestKind.Xxh64,
        ChecksumKind.Xxh3 => PageDigestKind.Xxh3,
        _ => throw new UnsupportedChecksumException(kind),
    };

    /// <summary>The wire's name for <paramref name="kind"/>.</summary>
    public static ChecksumKind ToWire(PageDigestKind kind) => kind switch
    {
        PageDigestKind.Xxh64 => ChecksumKind.Xxh64,
        PageDigestKind.Xxh3 => ChecksumKind.Xxh3,
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "not a page digest kind (Xxh64, Xxh3)."),
    };
}

/// <summary>A peer named a per-page checksum kind this build does not compute (gRPC INVALID_ARGUMENT).</summary>
public sealed class UnsupportedChecksumException(ChecksumKind kind)
    : ArgumentException($"checksum kind {kind} ({(int)kind}) is not supported here (known: {ChecksumKind.Xxh64}, {ChecksumKind.Xxh3}).")
{
    /// <summary>The kind named.</summary>
    public ChecksumKind Kind { get; } = kind;
}
