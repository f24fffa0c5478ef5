using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Google.Protobuf;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Rpc;
using MigrationFabric.Migration.DataPlane.Tcp;
using MigrationFabric.Rpc.Client;

namespace MigrationFabric.Migration.DataPlane.FaultChannel;

/// <summary>The source's side of setting up a post-copy fault channel at switch-over: OpenDataChannel (REMOTE_FAULTS) on the destination, connect, token, wait for the destination's open frame.</summary>
/// <remarks>The source waits for the open frame before it sends SwitchOver, so the destination has its channel in hand before its vCPUs can fault.</remarks>
internal static class FaultChannelOpener
{
    /// <summary>Opens the channel for <paramref name="migrationId"/>; the caller starts serving it once the switch-over has made the pending set (<see cref="FaultChannelServer.Start"/>).</summary>
    /// <exception cref="FaultChannelException">The destination is served over TLS, refused the channel, the connection failed, or no valid open frame came within <paramref name="timeout"/>.</exception>
    public static async Task<FaultChannelServer> OpenAsync(RpcChannel control, Uri destination, string migrationId, string vm, TimeSpan timeout, CancellationToken cancellationToken)
    {
        // Never a silent downgrade: page contents would cross in clear where the operator asked for TLS.
        if (destination.Scheme == Uri.UriSchemeHttps)
            throw new FaultChannelException($"FaultTransport is Tcp, but the destination {destination} is served over TLS and the fault channel has no TLS: " +
                "set PostCopyOptions/HybridOptions.FaultTransport to Grpc for this destination.");
        OpenDataChannelResponse grant;
        try
        {
            grant = await control.AsyncUnaryCall(PagesContract.OpenDataChannel,
                new OpenDataChannelRequest { MigrationId = migrationId, StreamIndex = 0, Purpose = DataChannelPurpose.RemoteFaults },
                new CallOptions(CancellationToken: cancellationToken).WithTimeout(timeout)).ResponseAsync.ConfigureAwait(false);
        }
        catch (RpcException e)
        {
            throw new FaultChannelException($"the destination refused the post-copy fault channel (OpenDataChannel {e.StatusCode}: {e.Status.Detail}); " +
                "PostCopyOptions/HybridOptions.FaultTransport = Grpc serves faults with RemotePages calls instead.", e);
        }
        if (grant.Port is 0 or > 65535 || grant.Token.Length != DataChannelTokens.Size)
            throw new FaultChannelException($"the destination's OpenDataChannel reply is invalid: port {grant.Port}, token of {grant.Token.Length} bytes (expected 1..65535 and {DataChannelTokens.Size}).");
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            deadline.CancelAfter(timeout);
            try
            {
                await socket.ConnectAsync(new DnsEndPoint(destination.Host, (int)grant.Port), deadline.Token).ConfigureAwait(false);
                await SendAllAsync(socket, grant.Token.Memory, deadline.Token).ConfigureAwait(false);
                var open = await ReadOpenAsync(socket, deadline.Token).ConfigureAwait(false);
                if (open.MigrationId != migrationId || open.Vm != vm || open.PageNumbers.Count != 0)
                    throw new FaultChannelException($"the destination's first fault-channel frame names migration '{open.MigrationId}' VM '{open.Vm}' with {open.PageNumbers.Count} page(s); " +
                        $"expected migration '{migrationId}' VM '{vm}' and no pages.");
            }
            catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
            {
                throw new FaultChannelException($"the post-copy fault channel to {destination.Host}:{grant.Port} was not open within {timeout.TotalMilliseconds:0} ms.", e);
            }
            catch (SocketException e)
            {
                throw new FaultChannelException($"the post-copy fault channel to {destination.Host}:{grant.Port} failed: {e.SocketErrorCode} ({e.Message}).", e);
            }
            return new FaultChannelServer(socket);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static async Task<RemotePagesRequest> ReadOpenAsync(Socket socket, CancellationToken cancellationToken)
    {
        var header = new byte[FaultFrame.HeaderSize];
        await ReceiveAllAsync(socket, header, cancellationToken).ConfigureAwait(false);
        uint length = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(1));
        if (header[0] != 0 || length > 64 << 10)
            throw new FaultChannelException($"garbled first frame on the post-copy fault channel: compressed flag {header[0]}, length {length}.");
        var body = new byte[length];
        await ReceiveAllAsync(socket, body, cancellationToken).ConfigureAwait(false);
        RemotePagesRequest open;
        try { open = RemotePagesRequest.Parser.ParseFrom(body); }
        catch (InvalidProtocolBufferException e) { throw new FaultChannelException($"garbled first frame on the post-copy fault channel: {e.Message}", e); }
        if (open.MigrationId.Length == 0)
        {
            // The listener refuses a connection (a bad token) with a data channel's error frame, a PageAck.
            PageAck? refusal = null;
            try { refusal = PageAck.Parser.ParseFrom(body); } catch (InvalidProtocolBufferException) { }
            if (refusal is { ErrorCode: not 0 })
                throw new FaultChannelException($"the destination refused the post-copy fault channel ({(StatusCode)refusal.ErrorCode}): {refusal.ErrorMessage}");
        }
        return open;
    }

    private static async Task ReceiveAllAsync(Socket socket, Memory<byte> into, CancellationToken cancellationToken)
    {
        while (!into.IsEmpty)
        {
            int n = await socket.ReceiveAsync(into, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (n == 0) throw new FaultChannelException("the destination closed the post-copy fault channel before its first frame.");
            into = into[n..];
        }
    }

    private static async Task SendAllAsync(Socket socket, ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken)
    {
        while (!bytes.IsEmpty) bytes = bytes[await socket.SendAsync(bytes, SocketFlags.None, cancellationToken).ConfigureAwait(false)..];
    }
}
