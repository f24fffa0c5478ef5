using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using Google.Protobuf;

namespace MigrationFabric.Rpc.Framing;

/// <summary>Reads length-prefixed gRPC messages straight from a PipeReader: waits for a whole message, parses it from the buffered sequence without copying it first.</summary>
public static class MessageFrameReader
{
    /// <summary>
    /// Reads the next message; null at a clean end of stream. Bad frames throw <see cref="RpcException"/>: INTERNAL for a truncated or
    /// unparsable message or an unexpected compressed flag, RESOURCE_EXHAUSTED when larger than <paramref name="maxMessageSize"/>.
    /// </summary>
    public static ValueTask<T?> ReadMessageAsync<T>(PipeReader reader, MessageParser<T> parser, int? maxMessageSize, CancellationToken cancellationToken)
        where T : class, IMessage<T>
    {
        ArgumentNullException.ThrowIfNull(parser);
        return ReadMessageAsync(reader, payload => parser.ParseFrom(payload), maxMessageSize, cancellationToken);
    }

    /// <summary>As above, with a deserializer that sees the payload in the pipe's own buffers (valid only during the call).</summary>
    public static async ValueTask<T?> ReadMessageAsync<T>(PipeReader reader, Func<ReadOnlySequence<byte>, T> deserializer, int? maxMessageSize, CancellationToken cancellationToken)
        where T : class
    {
        ArgumentNullException.ThrowIfNull(reader);
        ArgumentNullException.ThrowIfNull(deserializer);
        while (true)
        {
            var result = await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = result.Buffer;
            if (result.IsCanceled)
            {
                reader.AdvanceTo(buffer.Start);
                throw new OperationCanceledException("The message read was canceled.");
            }

            if (buffer.Length >= GrpcProtocol.FrameHeaderSize)
            {
                var length = ReadHeader(buffer, maxMessageSize, reader);
                var frameLength = GrpcProtocol.FrameHeaderSize + length;
                if (buffer.Length >= frameLength)
                {
                    var payload = buffer.Slice(GrpcProtocol.FrameHeaderSize, length);
                    T message;
                    try
                    {
                        message = deserializer(payload);
                    }
                    catch (Exception e) when (e is not RpcException and not OperationCanceledException)
                    {
                        reader.AdvanceTo(buffer.GetPosition(frameLength));
                        throw new RpcException(StatusCode.Internal, $"Failed to parse a {length}-byte message as {typeof(T).Name}: {e.Message}");
                    }
                    catch
                    {
                        reader.AdvanceTo(buffer.GetPosition(frameLength));
                        throw;
                    }

                    reader.AdvanceTo(buffer.GetPosition(frameLength));
                    return message;
                }
            }

            if (result.IsCompleted)
            {
                var remaining = buffer.Length;
                if (remaining == 0)
                {
                    reader.AdvanceTo(buffer.End);
                    return null;
                }

                var detail = remaining < GrpcProtocol.FrameHeaderSize
                    ? $"Incomplete message: the stream ended inside a frame header ({remaining} of {GrpcProtocol.FrameHeaderSize} bytes)."
                    : $"Incomplete message: the stream ended after {remaining - GrpcProtocol.FrameHeaderSize} of {ReadLength(buffer)} payload bytes.";
                reader.AdvanceTo(buffer.End);
                throw new RpcException(StatusCode.Internal, detail);
            }

            // Nothing consumed, everything examined: the next read returns only when more bytes arrive.
            reader.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    private static int ReadHeader(in ReadOnlySequence<byte> buffer, int? maxMessageSize, PipeReader reader)
    {
        Span<byte> header = stackalloc byte[GrpcProtocol.FrameHeaderSize];
        buffer.Slice(0, GrpcProtocol.FrameHeaderSize).CopyTo(header);
        var flag = header[0];
        var length = BinaryPrimitives.ReadUInt32BigEndian(header[1..]);
        if (flag != 0)
        {
            reader.AdvanceTo(buffer.Start);
            throw new RpcException(StatusCode.Internal, flag == 1
                ? "Received a compressed message, but no grpc-encoding was negotiated for this call (only 'identity' is supported)."
                : $"Malformed frame: compressed flag is {flag}; only 0 and 1 are valid.");
        }

        if (length > int.MaxValue - GrpcProtocol.FrameHeaderSize || (maxMessageSize is { } max && length > (uint)max))
        {
            reader.AdvanceTo(buffer.Start);
            throw new RpcException(StatusCode.ResourceExhausted,
                $"Received message larger than max ({length} vs. {maxMessageSize?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "2 GiB"} bytes).");
        }

        return (int)length;
    }

    private static uint ReadLength(in ReadOnlySequence<byte> buffer)
    {
        Span<byte> header = stackalloc byte[GrpcProtocol.FrameHeaderSize];
        buffer.Slice(0, GrpcProtocol.FrameHeaderSize).CopyTo(header);
        return BinaryPrimitives.ReadUInt32BigEndian(header[1..]);
    }
}
