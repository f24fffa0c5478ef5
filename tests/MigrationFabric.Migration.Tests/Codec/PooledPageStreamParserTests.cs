using System.Buffers;
using Google.Protobuf;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Migration.Codec;

namespace MigrationFabric.Migration.Tests.Codec;

public class PooledPageStreamParserTests
{
    private static PageStreamMessage Batch(int pages, bool deflate, int seed)
    {
        var builder = new PageBatchBuilder(Math.Max(1, pages), deflate ? PageCompression.Deflate : PageCompression.None);
        var rng = new Random(seed);
        var page = new byte[Page.Size];
        for (int i = 0; i < pages; i++)
        {
            if (i % 3 == 0) Array.Clear(page);
            else if (i % 3 == 1) rng.NextBytes(page);
            else for (int b = 0; b < page.Length; b++) page[b] = (byte)(b % 5 + i);
            builder.AddPage(1000 + i * 7, page, i % 2 == 0 ? PageFlags.Retransfer : PageFlags.None);
        }
        var batch = builder.Build(4).Batch.Clone();
        batch.Sequence = 17;
        return new PageStreamMessage { Batch = batch };
    }

    // The transport hands a message over in small segments (Kestrel: 4 KiB blocks); split the bytes that way.
    private static ReadOnlySequence<byte> Segmented(byte[] bytes, int segment)
    {
        Segment? first = null, last = null;
        for (int offset = 0; offset < bytes.Length || first is null; offset += segment)
        {
            var part = bytes.AsMemory(offset, Math.Min(segment, bytes.Length - offset));
            last = last is null ? first = new Segment(part, 0) : last.Append(part);
            if (bytes.Length == 0) break;
        }
        return new ReadOnlySequence<byte>(first!, 0, last!, last!.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }

    [Theory]
    [InlineData(256, false, 4096)]
    [InlineData(256, false, 1000)]
    [InlineData(37, true, 4096)]
    [InlineData(1, false, 7)]
    [InlineData(0, false, 4096)]
    public void A_batch_parses_to_what_protobuf_parses(int pages, bool deflate, int segment)
    {
        var message = Batch(pages, deflate, pages);
        var bytes = message.ToByteArray();
        var parser = new PooledPageStreamParser();

        var parsed = parser.Parse(Segmented(bytes, segment));

        Assert.Equal(PageStreamMessage.Parser.ParseFrom(bytes), parsed);
        Assert.Equal(message, parsed);
        parser.Release(parsed.Batch);
        Assert.True(parsed.Batch.Payload.IsEmpty);
    }

    [Fact]
    public void Fields_in_any_order_and_unknown_fields_parse_as_protobuf_does()
    {
        var message = Batch(8, deflate: false, seed: 3);
        var batch = message.Batch;
        // Payload first, then the rest in reverse field order, then an unknown field 15 (varint) the receiver must skip.
        var inner = new MemoryStream();
        var output = new CodedOutputStream(inner);
        output.WriteTag(5, WireFormat.WireType.LengthDelimited);
        output.WriteBytes(batch.Payload);
        output.WriteTag(6, WireFormat.WireType.LengthDelimited);
        output.WriteLength(batch.Checksums.Count * 8);
        foreach (var c in batch.Checksums) output.WriteFixed64(c);
        output.WriteTag(4, WireFormat.WireType.LengthDelimited);
        output.WriteBytes(batch.Flags);
        foreach (var p in batch.PageNumbers)
        {
            output.WriteTag(3, WireFormat.WireType.Varint); // unpacked, which protobuf accepts too
            output.WriteUInt64(p);
        }
        output.WriteTag(2, WireFormat.WireType.Varint);
        output.WriteUInt32(batch.Round);
        output.WriteTag(1, WireFormat.WireType.Varint);
        output.WriteUInt64(batch.Sequence);
        output.WriteTag(15, WireFormat.WireType.Varint);
        output.WriteUInt64(99);
        output.Flush();
        var outer = new MemoryStream();
        var top = new CodedOutputStream(outer);
        top.WriteTag(2, WireFormat.WireType.LengthDelimited);
        top.WriteBytes(ByteString.CopyFrom(inner.ToArray()));
        top.Flush();
        var bytes = outer.ToArray();

        var parsed = new PooledPageStreamParser().Parse(Segmented(bytes, 512));

        Assert.Equal(PageStreamMessage.Parser.ParseFrom(bytes), parsed);
        Assert.Equal(batch.PageNumbers, parsed.Batch.PageNumbers);
        Assert.Equal(batch.Payload, parsed.Batch.Payload);
    }

    [Fact]
    public void Open_close_and_a_repeated_payload_field_go_to_protobuf_unchanged()
    {
        var parser = new PooledPageStreamParser();
        var open = new PageStreamMessage { Open = new StreamOpen { MigrationId = "m", Vm = "vm", TotalPages = 64, PageSize = Page.Size } };
        var close = new PageStreamMessage { Close = new StreamClose { Batches = 3, Pages = 9 } };
        Assert.Equal(open, parser.Parse(new ReadOnlySequence<byte>(open.ToByteArray())));
        Assert.Equal(close, parser.Parse(new ReadOnlySequence<byte>(close.ToByteArray())));

        // Two payload fields: protobuf keeps the last one; so must this parser.
        var batch = new PageBatch { Sequence = 1, Payload = ByteString.CopyFrom(1, 2, 3) };
        var twice = batch.ToByteArray().Concat(new PageBatch { Payload = ByteString.CopyFrom(7, 8) }.ToByteArray()).ToArray();
        var message = new MemoryStream();
        var top = new CodedOutputStream(message);
        top.WriteTag(2, WireFormat.WireType.LengthDelimited);
        top.WriteBytes(ByteString.CopyFrom(twice));
        top.Flush();
        var parsed = parser.Parse(new ReadOnlySequence<byte>(message.ToArray()));
        Assert.Equal(ByteString.CopyFrom(7, 8), parsed.Batch.Payload);
        parser.Release(parsed.Batch); // not rented: nothing to return, must not throw

        var empty = new PageStreamMessage { Batch = new PageBatch() };
        Assert.Equal(empty, parser.Parse(new ReadOnlySequence<byte>(empty.ToByteArray())));
    }

    [Theory]
    [InlineData(10)]
    [InlineData(2000)]
    public void A_truncated_batch_fails_as_protobuf_fails(int cut)
    {
        var bytes = Batch(4, deflate: false, seed: 1).ToByteArray();
        var truncated = bytes.AsSpan(0, bytes.Length - cut).ToArray();
        Assert.Throws<InvalidProtocolBufferException>(() => new PooledPageStreamParser().Parse(new ReadOnlySequence<byte>(truncated)));
    }

    [Fact]
    public void Release_is_idempotent_and_ignores_batches_it_did_not_parse()
    {
        var parser = new PooledPageStreamParser();
        var parsed = parser.Parse(new ReadOnlySequence<byte>(Batch(16, deflate: false, seed: 5).ToByteArray()));
        parser.Release(parsed.Batch);
        parser.Release(parsed.Batch);
        parser.Release(null);
        parser.Release(new PageBatch { Payload = ByteString.CopyFrom(new byte[4096]) });
    }
}

public class EncodedBatchFrameTests
{
    [Theory]
    [InlineData(256, false, 1UL)]
    [InlineData(300, false, 1UL << 40)]
    [InlineData(37, true, 129UL)]
    [InlineData(5, false, 0UL)]
    public void A_frame_is_the_batch_message_as_protobuf_would_read_and_size_it(int pages, bool deflate, ulong sequence)
    {
        var builder = new PageBatchBuilder(Math.Max(1, pages), deflate ? PageCompression.Deflate : PageCompression.None, frameHeadroom: true);
        var rng = new Random(pages);
        var page = new byte[Page.Size];
        for (int i = 0; i < pages; i++)
        {
            if (i % 4 == 0) Array.Clear(page);
            else if (i % 4 == 1) rng.NextBytes(page);
            else for (int b = 0; b < page.Length; b++) page[b] = (byte)(b % 9 + i);
            builder.AddPage((long)i * 1_000_003 % (1L << 34), page, i % 3 == 0 ? PageFlags.Retransfer : PageFlags.None);
        }
        using var encoded = builder.Build(round: (uint)pages % 3);
        encoded.Batch.Sequence = sequence;
        var expected = new PageStreamMessage { Batch = encoded.Batch };

        var frame = encoded.Frame(sequence);

        var message = frame[Rpc.Framing.GrpcProtocol.FrameHeaderSize..];
        Assert.Equal(expected.CalculateSize(), message.Length);
        Assert.Equal(expected, PageStreamMessage.Parser.ParseFrom(message.Span));
        var parser = new PooledPageStreamParser();
        var pooled = parser.Parse(new ReadOnlySequence<byte>(message));
        Assert.Equal(expected, pooled);
        parser.Release(pooled.Batch);
        // The payload was not moved: the frame ends with the builder's payload bytes in place.
        Assert.True(message.Span[^encoded.PayloadBytes..].SequenceEqual(encoded.Batch.Payload.Span));
    }

    [Fact]
    public void A_frame_needs_headroom_and_a_live_batch()
    {
        var plain = new PageBatchBuilder(4);
        plain.AddPage(1, new byte[Page.Size]);
        using (var encoded = plain.Build(1))
            Assert.Throws<InvalidOperationException>(() => encoded.Frame(1));
        var framed = new PageBatchBuilder(4, frameHeadroom: true);
        framed.AddZeroPage(2);
        var batch = framed.Build(1);
        batch.Dispose();
        Assert.Throws<ObjectDisposedException>(() => batch.Frame(1));
    }
}
