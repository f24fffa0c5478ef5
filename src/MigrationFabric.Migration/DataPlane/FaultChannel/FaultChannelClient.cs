using System.Net.Sockets;
using Google.Protobuf;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Rpc;

namespace MigrationFabric.Migration.DataPlane.FaultChannel;

/// <summary>The destination's end of a post-copy fault channel: the faulting vCPU's thread sends the request and blocks in the socket read for the reply.</summary>
/// <remarks>
/// One request at a time per channel (as QEMU's single postcopy-preempt channel); the MMU already coalesces
/// faults on one page, so vCPUs queue here only when they fault on different pages at once. Any I/O error,
/// timeout or garbled reply leaves the channel broken: framing can no longer be trusted.
/// </remarks>
internal sealed class FaultChannelClient : IDisposable
{
    private readonly Socket _socket;
    private readonly Lock _lock = new();
    private readonly string _peer;
    private readonly TimeSpan _timeout;
    private string? _broken;

    public FaultChannelClient(Socket socket, TimeSpan timeout)
    {
        _socket = socket;
        _timeout = timeout;
        _peer = socket.RemoteEndPoint?.ToString() ?? "the source";
        socket.NoDelay = true;
        socket.ReceiveTimeout = socket.SendTimeout = (int)Math.Clamp(timeout.TotalMilliseconds, 1, int.MaxValue);
    }

    /// <summary>Sends the channel's first frame, naming the migration and VM with no pages: the source waits for it before switching over.</summary>
    public void SendOpen(string migrationId, string vm)
    {
        lock (_lock)
        {
            try { FaultFrame.WriteMessage(_socket, new RemotePagesRequest { MigrationId = migrationId, Vm = vm }); }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                throw Break(new FaultChannelException($"the fault channel to {_peer} failed before its first request: {e.Message}", e));
            }
        }
    }

    /// <summary>Sends <paramref name="request"/> and returns the source's reply; <paramref name="sentNs"/> is when the request was handed to the socket.</summary>
    /// <exception cref="FaultChannelException">The channel is closed, broken, timed out, or the source refused or garbled the reply.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired (the socket is closed to end the wait).</exception>
    public RemotePagesResponse Fetch(RemotePagesRequest request, CancellationToken cancellationToken, out long sentNs)
    {
        lock (_lock)
        {
            if (Volatile.Read(ref _broken) is { } why) throw new FaultChannelException($"the fault channel to {_peer} is unusable: {why}");
            cancellationToken.ThrowIfCancellationRequested();
            // A vCPU blocked in Receive is woken only by closing the socket.
            using var registration = cancellationToken.UnsafeRegister(static s => ((Socket)s!).Dispose(), _socket);
            RemotePagesResponse response;
            try
            {
                sentNs = RemoteFaultSteps.NowNanoseconds();
                FaultFrame.WriteMessage(_socket, request);
                using var frame = FaultFrame.Read(_socket, _peer)
                    ?? throw new FaultChannelException($"{_peer} closed the fault channel while a fault was out.");
                response = RemotePagesResponse.Parser.ParseFrom(frame.Payload);
            }
            catch (InvalidProtocolBufferException e)
            {
                throw Break(new FaultChannelException($"garbled reply from {_peer}: {e.Message}", e));
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException && cancellationToken.IsCancellationRequested)
            {
                Break("cancelled");
                throw new OperationCanceledException("the fault was cancelled.", e, cancellationToken);
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock)
            {
                throw Break(new FaultChannelException($"no reply from {_peer} within {_timeout.TotalMilliseconds:0} ms.", e));
            }
            catch (SocketException e)
            {
                throw Break(new FaultChannelException($"the fault channel to {_peer} failed: {e.SocketErrorCode} ({e.Message}).", e));
            }
            catch (ObjectDisposedException e)
            {
                throw Break(new FaultChannelException($"the fault channel to {_peer} is closed.", e));
            }
            catch (FaultChannelException e)
            {
                throw Break(e);
            }
            if (response.ErrorCode == 0) return response;
            // The source refused this request only: the framing is intact and the channel stays usable.
            throw new FaultChannelException($"the source refused the fault ({(StatusCode)response.ErrorCode}): {response.ErrorMessage}");
        }
    }

    private FaultChannelException Break(FaultChannelException e)
    {
        Break(e.Message);
        return e;
    }

    private void Break(string why)
    {
        Interlocked.CompareExchange(ref _broken, why, null);
        _socket.Dispose();
    }

    /// <summary>Closes the channel; a vCPU blocked in <see cref="Fetch"/> gets a <see cref="FaultChannelException"/> at once.</summary>
    public void Dispose() => Break("closed (the migration ended here)");
}
