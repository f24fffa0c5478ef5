using System.Buffers;
using System.IO.Compression;
using Google.Protobuf;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Memory.Integrity;
using MigrationFabric.Memory.Pages;

namespace MigrationFabric.Migration.Codec;

/// <summary>Accumulates pages into one wire batch in pooled buffers: zero pages as a flag, a checksum per page (XXH64 or XXH3), optional deflate.</summary>
/// <remarks>
/// Each page is copied once, from guest memory into the pooled payload, and hashed from that copy, so the
/// checksum always matches what travels even while vCPUs keep writing the page. <see cref="Build"/> hands the
/// buffers to an <see cref="EncodedBatch"/> (which returns them to the pool when disposed) and rents new ones.
/// </remarks>
public sealed class PageBatchBuilder
{
    private readonly int _capacity;
    private readonly PageCompression _compression;
    private readonly int _headroom;
    private readonly PageDigestKind _checksum;
    private readonly ulong _zeroChecksum;
    private byte[] _payload;
    private byte[] _flags;
    private long[] _pages;
    private ulong[] _checksums;
    private uint[] _lengths;
    private int _count;
    private int _payloadLength;
    private bool _anyCompressed;
    private byte[]? _scratch;
    private MemoryStream? _deflated;

    /// <summary>Creates a builder of batches of at most <paramref name="capacityPages"/> pages.</summary>
    /// <param name="capacityPages">Most pages per batch (1..1024).</param>
    /// <param name="compression">How payloads are compressed.</param>
    /// <param name="frameHeadroom">Leave room before the payload for the gRPC frame header and the batch's other fields, so
    /// <see cref="EncodedBatch.Frame"/> can lay out the whole PageStream message in place (no serialization copy of the payload).</param>
    /// <param name="checksum">The per-page checksum (the receiver must verify with the same kind).</param>
    public PageBatchBuilder(int capacityPages, PageCompression compression = PageCompression.None, bool frameHeadroom = false,
        PageDigestKind checksum = PageDigestKind.Xxh64)
    {
        if (capacityPages < 1 || capacityPages > 1024)
            throw new ArgumentOutOfRangeException(nameof(capacityPages), capacityPages, "a batch holds 1 to 1024 pages.");
        if (checksum is not (PageDigestKind.Xxh64 or PageDigestKind.Xxh3))
            throw new ArgumentOutOfRangeException(nameof(checksum), checksum, "not a page digest kind (Xxh64, Xxh3).");
        _checksum = checksum;
        _zeroChecksum = PageDigest.ZeroPageOf(checksum);
        _capacity = capacityPages;
        _compression = compression;
        _headroom = frameHeadroom ? EncodedBatch.MaxFrameOverhead(capacityPages) : 0;
        (_payload, _flags, _pages, _checksums, _lengths) = Rent(capacityPages, _headroom);
    }

    /// <summary>Pages in the batch being built.</summary>
    public int Count => _count;

    /// <summary>Whether the batch holds <see cref="Capacity"/> pages.</summary>
    public bool IsFull => _count == _capacity;

    /// <summary>Most pages per batch.</summary>
    public int Capacity => _capacity;

    /// <summary>Payload bytes so far.</summary>
    public int PayloadBytes => _payloadLength;

    /// <summary>The per-page checksum kind.</summary>
    public PageDigestKind Checksum => _checksum;

    /// <summary>Adds page <paramref name="page"/> with <paramref name="contents"/> (4096 bytes), which may be changing under running vCPUs.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)] // Hot per-page loop: optimized from its first call, not after tiering (a migration is often the first thing an agent runs for minutes).
    public void AddPage(long page, ReadOnlySpan<byte> contents, byte extraFlags = PageFlags.None)
    {
        if (contents.Length != Page.Size) throw new ArgumentException($"a page is {Page.Size} bytes, got {contents.Length}.", nameof(contents));
        CheckRoom();
        if (_compression == PageCompression.None)
        {
            var copy = _payload.AsSpan(_headroom + _payloadLength, Page.Size);
            contents.CopyTo(copy);
            if (!copy.ContainsAnyExcept((byte)0)) { Append(page, PageFlags.Zero | extraFlags, _zeroChecksum, 0); return; }
            _payloadLength += Page.Size;
            Append(page, extraFlags, PageDigest.Hash(_checksum, copy), 0);
            return;
        }
        _scratch ??= new byte[Page.Size];
        contents.CopyTo(_scratch);
        if (!_scratch.AsSpan().ContainsAnyExcept((byte)0)) { Append(page, PageFlags.Zero | extraFlags, _zeroChecksum, 0); return; }
        ulong checksum = PageDigest.Hash(_checksum, _scratch);
        int compressed = Deflate(_scratch, _payload.AsSpan(_headroom + _payloadLength, Page.Size));
        if (compressed > 0)
        {
            _payloadLength += compressed;
            _anyCompressed = true;
            Append(page, PageFlags.Compressed | extraFlags, checksum, (uint)compressed);
            return;
        }
        _scratch.CopyTo(_payload.AsSpan(_headroom + _payloadLength, Page.Size));
        _payloadLength += Page.Size;
        Append(page, extraFlags, checksum, 0);
    }

    /// <summary>Adds a page known to be all zeroes (never touched, ballooned) without reading it.</summary>
    public void AddZeroPage(long page, byte extraFlags = PageFlags.None)
    {
        CheckRoom();
        Append(page, (byte)(PageFlags.Zero | extraFlags), _zeroChecksum, 0);
    }

    /// <summary>Makes the wire batch of the pages added so far and starts an empty one; the batch owns the buffers until disposed.</summary>
    public EncodedBatch Build(uint round)
    {
        var batch = new PageBatch
        {
            Round = round,
            Flags = UnsafeByteOperations.UnsafeWrap(_flags.AsMemory(0, _count)),
            Payload = UnsafeByteOperations.UnsafeWrap(_payload.AsMemory(_headroom, _payloadLength)),
        };
        batch.PageNumbers.Capacity = _count;
        batch.Checksums.Capacity = _count;
        for (int i = 0; i < _count; i++)
        {
            batch.PageNumbers.Add((ulong)_pages[i]);
            batch.Checksums.Add(_checksums[i]);
        }
        if (_anyCompressed)
        {
            batch.Lengths.Capacity = _count;
            for (int i = 0; i < _count; i++) batch.Lengths.Add(_lengths[i]);
        }
        var encoded = new EncodedBatch(batch, _count, _payloadLength, _payload, _headroom, _anyCompressed, _flags, _pages, _checksums, _lengths);
        (_payload, _flags, _pages, _checksums, _lengths) = Rent(_capacity, _headroom);
        _count = 0;
        _payloadLength = 0;
        _anyCompressed = false;
        return encoded;
    }

    private void Append(long page, int flags, ulong checksum, uint length)
    {
        _pages[_count] = page;
        _flags[_count] = (byte)flags;
        _checksums[_count] = checksum;
        _lengths[_count] = length;
        _count++;
    }

    private void CheckRoom()
    {
        if (_count == _capacity) throw new InvalidOperationException($"the batch is full ({_capacity} pages): Build it first.");
    }

    // Deflates one page into destination; 0 when the result would not be smaller than the page.
    private int Deflate(byte[] page, Span<byte> destination)
    {
        _deflated ??= new MemoryStream(2 * Page.Size);
        _deflated.SetLength(0);
        using (var deflate = new DeflateStream(_deflated, CompressionLevel.Fastest, leaveOpen: true))
            deflate.Write(page, 0, page.Length);
        int length = (int)_deflated.Length;
        if (length >= Page.Size - 64) return 0;
        _deflated.GetBuffer().AsSpan(0, length).CopyTo(destination);
        return length;
    }

    private static (byte[], byte[], long[], ulong[], uint[]) Rent(int pages, int headroom) => (
        ArrayPool<byte>.Shared.Rent(headroom + pages * Page.Size),
        ArrayPool<byte>.Shared.Rent(pages),
        ArrayPool<long>.Shared.Rent(pages),
        ArrayPool<ulong>.Shared.Rent(pages),
        ArrayPool<uint>.Shared.Rent(pages));
}

/// <summary>A wire batch and the pooled buffers its payload points into; dispose it once the batch is written.</summary>
public sealed class EncodedBatch : IDisposable
{
    private byte[]? _payload;
    private readonly int _headroom;
    private readonly bool _anyCompressed;
    private readonly byte[] _flags;
    private readonly long[] _pages;
    private readonly ulong[] _checksums;
    private readonly uint[] _lengths;

    internal EncodedBatch(PageBatch batch, int pages, int payloadBytes, byte[] payload, int headroom, bool anyCompressed, byte[] flags, long[] pageNumbers, ulong[] checksums, uint[] lengths)
    {
        Batch = batch;
        Pages = pages;
        PayloadBytes = payloadBytes;
        _payload = payload;
        _headroom = headroom;
        _anyCompressed = anyCompressed;
        _flags = flags;
        _pages = pageNumbers;
        _checksums = checksums;
        _lengths = lengths;
    }

    /// <summary>The message (its payload and flags alias pooled buffers: valid until <see cref="Dispose"/>).</summary>
    public PageBatch Batch { get; }

    /// <summary>Pages in the batch.</summary>
    public int Pages { get; }

    /// <summary>Payload bytes.</summary>
    public int PayloadBytes { get; }

    /// <summary>The page numbers, for bookkeeping without touching the message.</summary>
    public ReadOnlySpan<long> PageNumbers => _pages.AsSpan(0, Pages);

    /// <summary>The checksums, same order.</summary>
    public ReadOnlySpan<ulong> Checksums => _checksums.AsSpan(0, Pages);

    /// <summary>Bytes a frame of up to <paramref name="pages"/> pages needs before its payload: gRPC header, message keys and lengths, sequence, round, and every per-page field at its largest.</summary>
    internal static int MaxFrameOverhead(int pages) => 64 + pages * (10 + 1 + 8 + 5);

    /// <summary>
    /// Lays out the PageStream message carrying this batch with <paramref name="sequence"/> (the batch's other fields first, the
    /// payload last, where it already is) and returns it as a gRPC frame: 5 bytes for the frame header, then the message.
    /// </summary>
    /// <remarks>Protobuf allows fields in any order; the message is byte for byte what a parser reads back as <see cref="Batch"/>
    /// with that sequence, and as long as protobuf's own serialization of it. Needs a builder made with frameHeadroom.</remarks>
    public Memory<byte> Frame(ulong sequence)
    {
        var buffer = _payload ?? throw new ObjectDisposedException(nameof(EncodedBatch));
        if (_headroom == 0) throw new InvalidOperationException("this batch was built without frame headroom (PageBatchBuilder frameHeadroom: false).");
        uint round = Batch.Round;
        int n = Pages;
        long pageBytes = 0, lengthBytes = 0;
        for (int i = 0; i < n; i++) pageBytes += VarintSize((ulong)_pages[i]);
        if (_anyCompressed)
            for (int i = 0; i < n; i++) lengthBytes += VarintSize(_lengths[i]);
        long fields = 0;
        if (sequence != 0) fields += 1 + VarintSize(sequence);
        if (round != 0) fields += 1 + VarintSize(round);
        if (n > 0) fields += 1 + VarintSize((ulong)pageBytes) + pageBytes + 1 + VarintSize((ulong)n) + n + 1 + VarintSize(8UL * (ulong)n) + 8L * n;
        if (_anyCompressed && n > 0) fields += 1 + VarintSize((ulong)lengthBytes) + lengthBytes;
        if (PayloadBytes > 0) fields += 1 + VarintSize((ulong)PayloadBytes);
        long batchLength = fields + PayloadBytes;
        long start = _headroom - fields - 1 - VarintSize((ulong)batchLength) - 5;
        if (start < 0) throw new InvalidOperationException($"frame fields need {_headroom - start} bytes of headroom, only {_headroom} reserved.");
        var span = buffer.AsSpan();
        int at = (int)start + 5;
        span[at++] = (2 << 3) | 2; // PageStreamMessage.batch
        at = WriteVarint(span, at, (ulong)batchLength);
        if (sequence != 0) { span[at++] = 1 << 3; at = WriteVarint(span, at, sequence); }
        if (round != 0) { span[at++] = 2 << 3; at = WriteVarint(span, at, round); }
        if (n > 0)
        {
            span[at++] = (3 << 3) | 2;
            at = WriteVarint(span, at, (ulong)pageBytes);
            for (int i = 0; i < n; i++) at = WriteVarint(span, at, (ulong)_pages[i]);
            span[at++] = (4 << 3) | 2;
            at = WriteVarint(span, at, (ulong)n);
            _flags.AsSpan(0, n).CopyTo(span[at..]);
            at += n;
            span[at++] = (6 << 3) | 2;
            at = WriteVarint(span, at, 8UL * (ulong)n);
            for (int i = 0; i < n; i++, at += 8) System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(span[at..], _checksums[i]);
            if (_anyCompressed)
            {
                span[at++] = (7 << 3) | 2;
                at = WriteVarint(span, at, (ulong)lengthBytes);
                for (int i = 0; i < n; i++) at = WriteVarint(span, at, _lengths[i]);
            }
        }
        if (PayloadBytes > 0)
        {
            span[at++] = (5 << 3) | 2;
            at = WriteVarint(span, at, (ulong)PayloadBytes);
        }
        if (at != _headroom) throw new InvalidOperationException($"frame layout ended at {at}, expected {_headroom}.");
        return buffer.AsMemory((int)start, _headroom + PayloadBytes - (int)start);
    }

    private static int VarintSize(ulong value) => value == 0 ? 1 : (70 - System.Numerics.BitOperations.LeadingZeroCount(value)) / 7;

    private static int WriteVarint(Span<byte> span, int at, ulong value)
    {
        while (value >= 0x80)
        {
            span[at++] = (byte)(value | 0x80);
            value >>= 7;
        }
        span[at++] = (byte)value;
        return at;
    }

    /// <summary>Returns the buffers to the pool.</summary>
    public void Dispose()
    {
        var payload = Interlocked.Exchange(ref _payload, null);
        if (payload is null) return;
        ArrayPool<byte>.Shared.Return(payload);
        ArrayPool<byte>.Shared.Return(_flags);
        ArrayPool<long>.Shared.Return(_pages);
        ArrayPool<ulong>.Shared.Return(_checksums);
        ArrayPool<uint>.Shared.Return(_lengths);
    }
}
