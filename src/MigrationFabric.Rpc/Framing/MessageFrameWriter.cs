using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using Google.Protobuf;

namespace MigrationFabric.Rpc.Framing;

/// <summary>Writes length-prefixed gRPC messages: header and payload serialized into one contiguous buffer, handed to the transport in one write.</summary>
public static class MessageFrameWriter
{
    /// <summary>The message's size, checked against the send limit (RESOURCE_EXHAUSTED naming both sizes).</summary>
    public static int MeasureMessage(IMessage message, int? maxMessageSize)
    {
        ArgumentNullException.ThrowIfNull(message);
        var size = message.CalculateSize();
        if (maxMessageSize is { } max && size > max)
        {
            throw new RpcException(StatusCode.ResourceExhausted, $"Sending message exceeds the maximum configured message size ({size} vs. {max} bytes).");
        }

        return size;
    }

    /// <summary>Checks an already serialized message's size against the send limit (RESOURCE_EXHAUSTED naming both sizes).</summary>
    public static void CheckSize(int size, int? maxMessageSize)
    {
        if (maxMessageSize is { } max && size > max)
        {
            throw new RpcException(StatusCode.ResourceExhausted, $"Sending message exceeds the maximum configured message size ({size} vs. {max} bytes).");
        }
    }

    /// <summary>Fills in the 5-byte header of a frame whose message the caller serialized after it, and writes the frame in one write.</summary>
    public static ValueTask WriteFrameAsync(Stream stream, Memory<byte> frame, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(stream);
        WriteHeader(frame.Span);
        return stream.WriteAsync(frame, cancellationToken);
    }

    /// <summary>Fills in the 5-byte header (uncompressed, big-endian length) of <paramref name="frame"/>, whose message the caller serialized after it.</summary>
    public static void WriteHeader(Span<byte> frame)
    {
        frame[0] = 0;
        BinaryPrimitives.WriteUInt32BigEndian(frame[1..], (uint)(frame.Length - GrpcProtocol.FrameHeaderSize));
    }

    /// <summary>Serializes header + message into the pipe as one contiguous span; the caller decides when to flush.</summary>
    public static void WriteMessage(PipeWriter writer, IMessage message, int size)
    {
        ArgumentNullException.ThrowIfNull(writer);
        var frameLength = GrpcProtocol.FrameHeaderSize + size;
        var span = writer.GetSpan(frameLength)[..frameLength];
        WriteFrame(span, message, size);
        writer.Advance(frameLength);
    }

    /// <summary>Serializes header + message into a pooled buffer and writes it to the stream in one write.</summary>
    public static async ValueTask WriteMessageAsync(Stream stream, IMessage message, int size, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var frameLength = GrpcProtocol.FrameHeaderSize + size;
        var buffer = ArrayPool<byte>.Shared.Rent(frameLength);
        try
        {
            WriteFrame(buffer.AsSpan(0, frameLength), message, size);
            await stream.WriteAsync(buffer.AsMemory(0, frameLength), cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Serializes header + <paramref name="message"/> (of <paramref name="size"/> bytes) into <paramref name="frame"/>, which is exactly header + size long.</summary>
    public static void WriteFrame(Span<byte> frame, IMessage message, int size)
    {
        frame[0] = 0;
        BinaryPrimitives.WriteUInt32BigEndian(frame[1..], (uint)size);
        if (size > 0)
        {
            message.WriteTo(frame[GrpcProtocol.FrameHeaderSize..]);
        }
    }
}
