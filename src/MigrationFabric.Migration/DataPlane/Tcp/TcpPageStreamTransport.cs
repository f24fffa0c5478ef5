using System.Net;
using System.Net.Sockets;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Rpc;
using MigrationFabric.Rpc.Client;
using MigrationFabric.Rpc.Framing;

namespace MigrationFabric.Migration.DataPlane.Tcp;

/// <summary>The source's end of a page-stream data channel: asks the destination for it over gRPC, connects, presents the token, then writes frames and reads acks on the socket.</summary>
internal sealed class TcpPageStreamTransport : IPageStreamTransport
{
    private const int MaxAckSize = 64 << 10;
    private readonly DataChannelSocket _socket;
    private readonly byte[] _header = new byte[GrpcProtocol.FrameHeaderSize];
    private readonly byte[] _ack = new byte[MaxAckSize];
    private readonly string _name;

    private TcpPageStreamTransport(DataChannelSocket socket, string name)
    {
        _socket = socket;
        _name = name;
    }

    public DataChannel Kind => DataChannel.Tcp;

    /// <summary>Socket buffer size used by the source. 4 MiB, as the listener's default.</summary>
    public const int SocketBufferSize = 4 << 20;

    /// <summary>OpenDataChannel on <paramref name="control"/> for stream <paramref name="streamIndex"/>, then connect to the port it names on the same host and present the token.</summary>
    public static async Task<TcpPageStreamTransport> ConnectAsync(RpcChannel control, string migrationId, uint streamIndex, CancellationToken cancellationToken)
    {
        var address = control.Address;
        if (address.Scheme == Uri.UriSchemeHttps)
            throw new NotSupportedException($"MigrationOptions.DataChannel is Tcp, but the destination {address} is served over TLS and the TCP data channel has no TLS: set MigrationOptions.DataChannel to Grpc for this destination.");
        var reply = await control.AsyncUnaryCall(PagesContract.OpenDataChannel,
            new OpenDataChannelRequest { MigrationId = migrationId, StreamIndex = streamIndex, Purpose = DataChannelPurpose.PageStream },
            new CallOptions(CancellationToken: cancellationToken)).ResponseAsync.ConfigureAwait(false);
        if (reply.Port is 0 or > 65535 || reply.Token.Length != DataChannelTokens.Size)
            throw new IOException($"OpenDataChannel for stream {streamIndex} answered port {reply.Port} and a {reply.Token.Length}-byte token; expected a port and a {DataChannelTokens.Size}-byte token.");
        EndPoint endpoint = IPAddress.TryParse(address.DnsSafeHost, out var ip) ? new IPEndPoint(ip, (int)reply.Port) : new DnsEndPoint(address.DnsSafeHost, (int)reply.Port);
        var raw = new Socket(SocketType.Stream, ProtocolType.Tcp);
        var socket = new DataChannelSocket(raw, SocketBufferSize);
        try
        {
            await raw.ConnectAsync(endpoint, cancellationToken).ConfigureAwait(false);
            await socket.SendAsync(reply.Token.Memory, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        return new TcpPageStreamTransport(socket, $"data channel {address.Authority}:{reply.Port} (stream {streamIndex})");
    }

    public async Task WriteMessageAsync(PageStreamMessage message, CancellationToken cancellationToken) =>
        await _socket.WriteMessageAsync(message, cancellationToken).ConfigureAwait(false);

    public async Task WriteFrameAsync(PageStreamMessage message, ReadOnlyMemory<byte> frame, CancellationToken cancellationToken)
    {
        // EncodedBatch.Frame leaves the 5-byte header to the transport (as the gRPC channel fills it): header and batch go in one write.
        MessageFrameWriter.WriteHeader(System.Runtime.InteropServices.MemoryMarshal.AsMemory(frame).Span);
        await _socket.SendAsync(frame, cancellationToken).ConfigureAwait(false);
    }

    public Task CompleteAsync()
    {
        _socket.ShutdownSend();
        return Task.CompletedTask;
    }

    public async Task<PageAck?> ReadAckAsync(CancellationToken cancellationToken)
    {
        int? length;
        try { length = await _socket.ReadFrameHeaderAsync(_header, MaxAckSize, cancellationToken).ConfigureAwait(false); }
        catch (DataChannelFrameException e) { throw new IOException($"{_name}: garbled ack: {e.Message}", e); }
        if (length is not { } n) return null;
        await _socket.ReadExactlyAsync(_ack.AsMemory(0, n), "an ack", cancellationToken).ConfigureAwait(false);
        PageAck ack;
        try { ack = PageAck.Parser.ParseFrom(_ack.AsSpan(0, n)); }
        catch (Google.Protobuf.InvalidProtocolBufferException e) { throw new IOException($"{_name}: garbled ack: {e.Message}", e); }
        if (ack.ErrorCode != 0) throw new RpcException((StatusCode)ack.ErrorCode, ack.ErrorMessage);
        return ack;
    }

    public ValueTask DisposeAsync()
    {
        _socket.Dispose();
        return ValueTask.CompletedTask;
    }
}
