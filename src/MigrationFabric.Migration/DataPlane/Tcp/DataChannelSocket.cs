using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using Google.Protobuf;
using MigrationFabric.Rpc.Framing;

namespace MigrationFabric.Migration.DataPlane.Tcp;

/// <summary>One data-channel connection's socket: exact reads, whole writes, gRPC-framed messages, and a close that lets the peer read a last error.</summary>
internal sealed class DataChannelSocket : IDisposable
{
    private static readonly TimeSpan LingerLimit = TimeSpan.FromSeconds(2);
    private readonly Socket _socket;
    private int _disposed;

    public DataChannelSocket(Socket socket, int bufferSize)
    {
        _socket = socket;
        // Acks are small and must not wait for Nagle; batches are one write of ~1 MiB each, so nothing is lost by sending at once.
        _socket.NoDelay = true;
        _socket.SendBufferSize = bufferSize;
        _socket.ReceiveBufferSize = bufferSize;
    }

    public Socket Socket => _socket;

    /// <summary>Fills <paramref name="buffer"/>; false when the peer closed cleanly before its first byte; <see cref="IOException"/> when it closed part-way.</summary>
    public async ValueTask<bool> ReadExactlyAsync(Memory<byte> buffer, string what, CancellationToken cancellationToken)
    {
        int got = 0;
        while (got < buffer.Length)
        {
            int n = await _socket.ReceiveAsync(buffer[got..], SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                if (got == 0) return false;
                throw new IOException($"data channel: the peer closed the connection in the middle of {what} ({got} of {buffer.Length} bytes).");
            }
            got += n;
        }
        return true;
    }

    public async ValueTask SendAsync(ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken)
    {
        while (!bytes.IsEmpty)
        {
            int n = await _socket.SendAsync(bytes, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (n <= 0) throw new IOException("data channel: the connection accepted no more bytes.");
            bytes = bytes[n..];
        }
    }

    /// <summary>Writes <paramref name="message"/> as one gRPC length-prefixed frame (uncompressed).</summary>
    public async ValueTask WriteMessageAsync(IMessage message, CancellationToken cancellationToken)
    {
        int size = message.CalculateSize();
        var buffer = ArrayPool<byte>.Shared.Rent(GrpcProtocol.FrameHeaderSize + size);
        try
        {
            MessageFrameWriter.WriteFrame(buffer.AsSpan(0, GrpcProtocol.FrameHeaderSize + size), message, size);
            await SendAsync(buffer.AsMemory(0, GrpcProtocol.FrameHeaderSize + size), cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Reads one frame's header: its message length, checked against <paramref name="maxSize"/>; null at a clean end.</summary>
    public async ValueTask<int?> ReadFrameHeaderAsync(Memory<byte> header, int maxSize, CancellationToken cancellationToken)
    {
        if (!await ReadExactlyAsync(header[..GrpcProtocol.FrameHeaderSize], "a frame header", cancellationToken).ConfigureAwait(false)) return null;
        var span = header.Span;
        if (span[0] != 0) throw new DataChannelFrameException($"frame header's compressed flag is {span[0]}; a data channel carries uncompressed frames only (0).");
        uint length = BinaryPrimitives.ReadUInt32BigEndian(span[1..]);
        if (length > (uint)maxSize) throw new DataChannelFrameException($"frame of {length} bytes exceeds the limit of {maxSize} bytes.");
        return (int)length;
    }

    /// <summary>Ends the sending direction (the peer reads end of stream after what was written).</summary>
    public void ShutdownSend()
    {
        try { _socket.Shutdown(SocketShutdown.Send); }
        catch (Exception e) when (e is SocketException or ObjectDisposedException) { /* already gone */ }
    }

    /// <summary>Half-closes, then reads and drops what the peer still sends (at most 2 s) before closing, so a last error frame is not lost to a reset.</summary>
    public async Task LingerCloseAsync()
    {
        ShutdownSend();
        var scratch = ArrayPool<byte>.Shared.Rent(64 << 10);
        try
        {
            using var timeout = new CancellationTokenSource(LingerLimit);
            while (await _socket.ReceiveAsync(scratch, SocketFlags.None, timeout.Token).ConfigureAwait(false) > 0) { }
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException) { /* closing anyway */ }
        finally
        {
            ArrayPool<byte>.Shared.Return(scratch);
            Dispose();
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0) _socket.Dispose();
    }
}

/// <summary>A data channel carried bytes that are not a well-formed frame.</summary>
public sealed class DataChannelFrameException(string message) : IOException(message);
