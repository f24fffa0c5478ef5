using System.IO.Compression;
using System.Runtime.InteropServices;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Memory.Integrity;
using MigrationFabric.Memory.Pages;

namespace MigrationFabric.Migration.Codec;

/// <summary>Walks a received PageBatch page by page after checking its shape; each page is copied once, into its destination.</summary>
public struct PageBatchReader
{
    private readonly PageBatch _batch;
    private readonly ReadOnlyMemory<byte> _payload;
    private readonly ReadOnlyMemory<byte> _flags;
    private readonly PageDigestKind _checksum;
    private int _index;
    private int _offset;

    /// <summary>Checks <paramref name="batch"/> against a VM of <paramref name="totalPages"/> pages; throws <see cref="PageBatchFormatException"/> naming what is wrong.</summary>
    /// <param name="batch">The received batch.</param>
    /// <param name="totalPages">The VM's pages: every page number must be below.</param>
    /// <param name="checksum">The kind of the batch's checksums (what the sender was told to compute).</param>
    public PageBatchReader(PageBatch batch, long totalPages, PageDigestKind checksum = PageDigestKind.Xxh64)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (checksum is not (PageDigestKind.Xxh64 or PageDigestKind.Xxh3))
            throw new ArgumentOutOfRangeException(nameof(checksum), checksum, "not a page digest kind (Xxh64, Xxh3).");
        _checksum = checksum;
        _batch = batch;
        _payload = batch.Payload.Memory;
        _flags = batch.Flags.Memory;
        int n = batch.PageNumbers.Count;
        if (_flags.Length != n) throw new PageBatchFormatException($"batch {batch.Sequence}: {n} page numbers but {_flags.Length} flags.");
        if (batch.Checksums.Count != n) throw new PageBatchFormatException($"batch {batch.Sequence}: {n} page numbers but {batch.Checksums.Count} checksums.");
        if (batch.Lengths.Count != 0 && batch.Lengths.Count != n)
            throw new PageBatchFormatException($"batch {batch.Sequence}: {n} page numbers but {batch.Lengths.Count} lengths.");
        long expected = 0;
        var flags = _flags.Span;
        for (int i = 0; i < n; i++)
        {
            ulong page = batch.PageNumbers[i];
            if (page >= (ulong)totalPages)
                throw new PageBatchFormatException($"batch {batch.Sequence}: page {page} is outside the VM's {totalPages} pages.");
            byte f = flags[i];
            if ((f & ~PageFlags.Known) != 0) throw new PageBatchFormatException($"batch {batch.Sequence}: page {page} has unknown flag bits 0x{f:x2}.");
            bool zero = (f & PageFlags.Zero) != 0, compressed = (f & PageFlags.Compressed) != 0;
            if (zero && compressed) throw new PageBatchFormatException($"batch {batch.Sequence}: page {page} is flagged both zero and compressed.");
            uint length = batch.Lengths.Count == 0 ? 0 : batch.Lengths[i];
            if (compressed)
            {
                if (length == 0 || length > Page.Size)
                    throw new PageBatchFormatException($"batch {batch.Sequence}: compressed page {page} has length {length} (must be 1..{Page.Size}).");
                expected += length;
            }
            else
            {
                if (length != 0) throw new PageBatchFormatException($"batch {batch.Sequence}: uncompressed page {page} has a length {length} (must be 0).");
                if (!zero) expected += Page.Size;
            }
        }
        if (expected != _payload.Length)
            throw new PageBatchFormatException($"batch {batch.Sequence}: the pages need {expected} payload bytes but the payload has {_payload.Length}.");
        _index = 0;
        _offset = 0;
    }

    /// <summary>Pages in the batch.</summary>
    public readonly int Count => _batch.PageNumbers.Count;

    /// <summary>Moves to the next page; false after the last.</summary>
    public bool TryRead(out PageBatchEntry entry)
    {
        if (_index >= Count) { entry = default; return false; }
        byte f = _flags.Span[_index];
        int length = (f & PageFlags.Zero) != 0 ? 0 : (f & PageFlags.Compressed) != 0 ? (int)_batch.Lengths[_index] : Page.Size;
        entry = new PageBatchEntry((long)_batch.PageNumbers[_index], f, _batch.Checksums[_index], _payload.Slice(_offset, length), _checksum);
        _offset += length;
        _index++;
        return true;
    }
}

/// <summary>One page of a received batch: its number, flags, checksum and encoded bytes.</summary>
public readonly struct PageBatchEntry
{
    internal PageBatchEntry(long page, byte flags, ulong checksum, ReadOnlyMemory<byte> encoded, PageDigestKind kind)
    {
        Page = page;
        Flags = flags;
        Checksum = checksum;
        Encoded = encoded;
        ChecksumKind = kind;
    }

    /// <summary>Guest page number.</summary>
    public long Page { get; }

    /// <summary><see cref="PageFlags"/> bits.</summary>
    public byte Flags { get; }

    /// <summary>The sender's digest of the page's contents, of <see cref="ChecksumKind"/>.</summary>
    public ulong Checksum { get; }

    /// <summary>Which hash <see cref="Checksum"/> is.</summary>
    public PageDigestKind ChecksumKind { get; }

    /// <summary>The page's bytes as sent (raw, deflated, or empty for zero pages).</summary>
    public ReadOnlyMemory<byte> Encoded { get; }

    /// <summary>Whether the page is all zeroes (nothing in the payload).</summary>
    public bool IsZero => (Flags & PageFlags.Zero) != 0;

    /// <summary>Writes the page's 4096 bytes into <paramref name="destination"/> (the one copy), then verifies the checksum over what landed there.</summary>
    /// <exception cref="PageChecksumException">The contents do not hash to <see cref="Checksum"/>.</exception>
    /// <exception cref="PageBatchFormatException">A compressed page does not inflate to exactly one page.</exception>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)] // Hot per-page loop: optimized from its first call, not after tiering (a migration is often the first thing an agent runs for minutes).
    public ulong DecodeInto(Span<byte> destination)
    {
        if (destination.Length != Memory.Pages.Page.Size) throw new ArgumentException($"a page is {Memory.Pages.Page.Size} bytes.", nameof(destination));
        if (IsZero) destination.Clear();
        else if ((Flags & PageFlags.Compressed) != 0) Inflate(destination);
        else Encoded.Span.CopyTo(destination);
        ulong actual = IsZero ? PageDigest.ZeroPageOf(ChecksumKind) : PageDigest.Hash(ChecksumKind, destination);
        if (actual != Checksum) throw new PageChecksumException(Page, Checksum, actual, ChecksumKind);
        return actual;
    }

    /// <summary>For a page sent raw (neither zero nor compressed): verifies the checksum over the bytes as received and hands them out in place, for a receiver that copies them somewhere itself (a placement), so they are copied once, not twice.</summary>
    /// <returns>False (nothing checked) for a zero or compressed page: use <see cref="DecodeInto"/>.</returns>
    /// <exception cref="PageChecksumException">The contents do not hash to <see cref="Checksum"/>.</exception>
    /// <exception cref="PageBatchFormatException">A raw page that is not exactly one page long.</exception>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)] // Hot per-page loop, as DecodeInto.
    public bool TryVerifyRaw(out ReadOnlySpan<byte> contents)
    {
        contents = default;
        if (IsZero || (Flags & PageFlags.Compressed) != 0) return false;
        var raw = Encoded.Span;
        if (raw.Length != Memory.Pages.Page.Size)
            throw new PageBatchFormatException($"page {Page}: {raw.Length} raw bytes, not one page of {Memory.Pages.Page.Size}.");
        ulong actual = PageDigest.Hash(ChecksumKind, raw);
        if (actual != Checksum) throw new PageChecksumException(Page, Checksum, actual, ChecksumKind);
        contents = raw;
        return true;
    }

    /// <summary>For a zero page: checks that its checksum is the zero page's (no bytes to write).</summary>
    public void VerifyZero()
    {
        ulong zero = PageDigest.ZeroPageOf(ChecksumKind);
        if (Checksum != zero) throw new PageChecksumException(Page, Checksum, zero, ChecksumKind);
    }

    private void Inflate(Span<byte> destination)
    {
        Stream source = MemoryMarshal.TryGetArray(Encoded, out var segment)
            ? new MemoryStream(segment.Array!, segment.Offset, segment.Count, writable: false)
            : new MemoryStream(Encoded.ToArray());
        try
        {
            using var inflate = new DeflateStream(source, CompressionMode.Decompress);
            int total = 0;
            while (total < destination.Length)
            {
                int n = inflate.Read(destination[total..]);
                if (n == 0) break;
                total += n;
            }
            Span<byte> extra = stackalloc byte[1];
            if (total != destination.Length || inflate.Read(extra) != 0)
                throw new PageBatchFormatException($"page {Page}: compressed data does not inflate to exactly {destination.Length} bytes.");
        }
        catch (InvalidDataException e)
        {
            throw new PageBatchFormatException($"page {Page}: compressed data is not a valid deflate stream ({e.Message}).");
        }
    }
}
