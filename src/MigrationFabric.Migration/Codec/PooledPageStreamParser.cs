using System.Buffers;
using System.Runtime.CompilerServices;
using Google.Protobuf;
using MigrationFabric.Contracts.V1;

namespace MigrationFabric.Migration.Codec;

/// <summary>Parses PageStream messages from the transport's buffers with each batch's payload copied into a pooled array instead of a new one.</summary>
/// <remarks>
/// Protobuf would give every 1 MiB payload its own array (Large Object Heap: ~1 GB allocated per GB received and a
/// gen2 GC every few batches). Here the batch's fields other than the payload are parsed by protobuf as usual (so every
/// encoding it accepts is still accepted) and the payload goes once into a rented array; <see cref="Release"/> gives
/// it back after the batch is installed. Anything not in the one shape the sender writes (a PageStreamMessage holding
/// exactly one batch with at most one payload field) is left to protobuf's parser unchanged.
/// </remarks>
public sealed class PooledPageStreamParser
{
    private const int BatchField = 2, PayloadField = 5;
    private const int LengthDelimited = 2;
    private readonly ConditionalWeakTable<PageBatch, byte[]> _rented = new();

    /// <summary>The deserializer to bind to the PageStream method (Method.WithDeserializers).</summary>
    public PageStreamMessage Parse(ReadOnlySequence<byte> message)
    {
        var fast = TryParseBatch(message);
        return fast ?? PageStreamMessage.Parser.ParseFrom(message);
    }

    /// <summary>Parses a message that was received whole into <paramref name="buffer"/>[0..<paramref name="length"/>), a rented array this parser now owns:
    /// a batch's payload stays where it landed (no second copy) and the array goes back to the pool at <see cref="Release"/>.</summary>
    public PageStreamMessage ParseRented(byte[] buffer, int length)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        bool kept = false;
        try
        {
            var fast = TryParseBatch(new ReadOnlySequence<byte>(buffer, 0, length), buffer);
            kept = fast is not null && _rented.TryGetValue(fast.Batch, out var owned) && ReferenceEquals(owned, buffer);
            return fast ?? PageStreamMessage.Parser.ParseFrom(buffer.AsSpan(0, length));
        }
        finally
        {
            if (!kept) ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Returns <paramref name="batch"/>'s payload to the pool if this parser rented it; the batch must not be read afterwards.</summary>
    public void Release(PageBatch? batch)
    {
        if (batch is null || !_rented.TryGetValue(batch, out var array)) return;
        _rented.Remove(batch);
        batch.Payload = ByteString.Empty;
        ArrayPool<byte>.Shared.Return(array);
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private PageStreamMessage? TryParseBatch(ReadOnlySequence<byte> message, byte[]? owned = null)
    {
        var reader = new SequenceReader<byte>(message);
        if (!TryReadVarint(ref reader, out ulong tag) || tag != (BatchField << 3 | LengthDelimited)) return null;
        if (!TryReadVarint(ref reader, out ulong batchLength) || batchLength != (ulong)reader.Remaining) return null;
        // The batch's fields: everything but the payload is gathered into a small buffer for protobuf.
        long payloadStart = -1;
        int payloadLength = 0;
        int restLength = 0;
        var rest = ArrayPool<byte>.Shared.Rent((int)Math.Clamp(reader.Remaining, 256, 64 * 1024));
        try
        {
            while (!reader.End)
            {
                long fieldStart = reader.Consumed;
                if (!TryReadVarint(ref reader, out ulong fieldTag)) return null;
                int wireType = (int)(fieldTag & 7);
                if (fieldTag >> 3 == PayloadField && wireType == LengthDelimited)
                {
                    if (payloadStart >= 0 || !TryReadVarint(ref reader, out ulong length) || length > (ulong)reader.Remaining) return null;
                    payloadStart = reader.Consumed;
                    payloadLength = (int)length;
                    reader.Advance(payloadLength);
                    continue;
                }
                if (!TrySkip(ref reader, wireType)) return null;
                int fieldLength = (int)(reader.Consumed - fieldStart);
                if (restLength + fieldLength > rest.Length)
                {
                    var bigger = ArrayPool<byte>.Shared.Rent(Math.Max(2 * rest.Length, restLength + fieldLength));
                    rest.AsSpan(0, restLength).CopyTo(bigger);
                    ArrayPool<byte>.Shared.Return(rest);
                    rest = bigger;
                }
                message.Slice(fieldStart, fieldLength).CopyTo(rest.AsSpan(restLength));
                restLength += fieldLength;
            }
            var batch = PageBatch.Parser.ParseFrom(rest.AsSpan(0, restLength));
            if (payloadLength > 0 && owned is not null)
            {
                batch.Payload = UnsafeByteOperations.UnsafeWrap(owned.AsMemory((int)payloadStart, payloadLength));
                _rented.AddOrUpdate(batch, owned);
            }
            else if (payloadLength > 0)
            {
                var payload = ArrayPool<byte>.Shared.Rent(payloadLength);
                message.Slice(payloadStart, payloadLength).CopyTo(payload);
                batch.Payload = UnsafeByteOperations.UnsafeWrap(payload.AsMemory(0, payloadLength));
                _rented.AddOrUpdate(batch, payload);
            }
            return new PageStreamMessage { Batch = batch };
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rest);
        }
    }

    private static bool TrySkip(ref SequenceReader<byte> reader, int wireType)
    {
        switch (wireType)
        {
            case 0: return TryReadVarint(ref reader, out _);
            case 1: return TryAdvance(ref reader, 8);
            case 5: return TryAdvance(ref reader, 4);
            case LengthDelimited: return TryReadVarint(ref reader, out ulong length) && length <= (ulong)reader.Remaining && TryAdvance(ref reader, (long)length);
            default: return false; // groups: not in pages.proto; protobuf's parser decides
        }
    }

    private static bool TryAdvance(ref SequenceReader<byte> reader, long count)
    {
        if (reader.Remaining < count) return false;
        reader.Advance(count);
        return true;
    }

    private static bool TryReadVarint(ref SequenceReader<byte> reader, out ulong value)
    {
        value = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (!reader.TryRead(out byte b)) return false;
            value |= (ulong)(b & 0x7f) << shift;
            if (b < 0x80) return true;
        }
        return false;
    }
}
