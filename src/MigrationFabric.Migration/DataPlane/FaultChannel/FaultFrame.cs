using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using Google.Protobuf;
using MigrationFabric.Rpc.Framing;

namespace MigrationFabric.Migration.DataPlane.FaultChannel;

/// <summary>The fault channel's framing, gRPC's length-prefixed messages: a compressed flag (always 0 here), a big-endian length, then a protobuf message.</summary>
/// <remarks>
/// Blocking socket calls on purpose: each end is a thread that has nothing else to do until the peer's frame
/// arrives (the faulting vCPU at the destination, the serving thread at the source), so the kernel wakes that
/// thread itself when the bytes land: no thread-pool hop, no HTTP/2 framing.
/// </remarks>
internal static class FaultFrame
{
    public const int HeaderSize = GrpcProtocol.FrameHeaderSize;

    /// <summary>Largest message accepted: a reply carries at most 1024 pages (4 MiB) plus their numbers and checksums.</summary>
    public const int MaxLength = 8 << 20;

    public static void WriteMessage(Socket socket, IMessage message)
    {
        int length = message.CalculateSize();
        byte[] buffer = ArrayPool<byte>.Shared.Rent(HeaderSize + length);
        try
        {
            MessageFrameWriter.WriteFrame(buffer.AsSpan(0, HeaderSize + length), message, length);
            SendAll(socket, buffer.AsSpan(0, HeaderSize + length));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Reads one frame's message into a pooled buffer (the caller disposes it); null when the peer closed the connection cleanly between frames.</summary>
    /// <exception cref="FaultChannelException">A malformed header or a connection closed inside a frame.</exception>
    public static Frame? Read(Socket socket, string peer)
    {
        Span<byte> header = stackalloc byte[HeaderSize];
        int got = ReceiveSome(socket, header);
        if (got == 0) return null;
        if (got < HeaderSize) ReceiveAll(socket, header[got..], peer);
        byte compressed = header[0];
        uint length = BinaryPrimitives.ReadUInt32BigEndian(header[1..]);
        if (compressed != 0)
            throw new FaultChannelException($"garbled frame from {peer}: compressed flag {compressed} (the fault channel sends messages uncompressed, flag 0).");
        if (length > MaxLength)
            throw new FaultChannelException($"garbled frame from {peer}: length {length} exceeds the fault channel's limit of {MaxLength} bytes.");
        byte[] buffer = ArrayPool<byte>.Shared.Rent((int)Math.Max(1, length));
        try
        {
            ReceiveAll(socket, buffer.AsSpan(0, (int)length), peer);
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }
        return new Frame(buffer, (int)length);
    }

    private static void SendAll(Socket socket, ReadOnlySpan<byte> bytes)
    {
        while (!bytes.IsEmpty) bytes = bytes[socket.Send(bytes)..];
    }

    private static int ReceiveSome(Socket socket, Span<byte> into) => socket.Receive(into);

    private static void ReceiveAll(Socket socket, Span<byte> into, string peer)
    {
        while (!into.IsEmpty)
        {
            int n = socket.Receive(into);
            if (n == 0) throw new FaultChannelException($"{peer} closed the fault channel in the middle of a frame.");
            into = into[n..];
        }
    }

    /// <summary>One received frame's message bytes; the buffer is rented from the shared pool.</summary>
    public readonly record struct Frame(byte[] Buffer, int Length) : IDisposable
    {
        public ReadOnlySpan<byte> Payload => Buffer.AsSpan(0, Length);

        public void Dispose() => ArrayPool<byte>.Shared.Return(Buffer);
    }
}

/// <summary>The post-copy fault channel failed: refused, closed, timed out or garbled; the message names which.</summary>
public sealed class FaultChannelException(string message, Exception? inner = null) : Exception(message, inner);
