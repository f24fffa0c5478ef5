using System.Net.Sockets;
using Google.Protobuf;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Rpc;

namespace MigrationFabric.Migration.DataPlane.FaultChannel;

/// <summary>The source's end of a post-copy fault channel: a dedicated thread blocks in the socket read and answers each fault as soon as it arrives.</summary>
/// <remarks>
/// The reply is written by the same thread that read the request, before it looks at the socket again, and the
/// background push holds off meanwhile (<see cref="OutgoingMigration.Serve"/> marks the fault urgent until
/// <see cref="OutgoingMigration.ReplyWritten"/>). A request for a page outside the VM gets an error reply and the
/// channel stays open; a garbled frame gets an error reply and the channel is closed.
/// </remarks>
internal sealed class FaultChannelServer : IDisposable
{
    private readonly Socket _socket;
    private OutgoingMigration _outgoing = null!;
    private readonly string _peer;
    private volatile bool _disposed;

    /// <summary>Wraps a connected channel whose open frame has been checked; nothing is read until <see cref="Start"/>.</summary>
    public FaultChannelServer(Socket socket)
    {
        _socket = socket;
        _peer = socket.RemoteEndPoint?.ToString() ?? "the destination";
        socket.NoDelay = true;
    }

    /// <summary>Why the channel ended (null while it runs or after a clean close by the destination).</summary>
    public Exception? Error { get; private set; }

    /// <summary>Set when the serving thread has ended.</summary>
    public Task Completion => _ended.Task;

    private readonly TaskCompletionSource _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Serves <paramref name="outgoing"/>'s faults from now on, on a dedicated thread.</summary>
    public void Start(OutgoingMigration outgoing)
    {
        _outgoing = outgoing;
        outgoing.FaultChannel = this;
        new Thread(Run) { IsBackground = true, Name = $"mf fault server {outgoing.MigrationId}" }.Start();
    }

    /// <summary>Whether <see cref="Start"/> ran.</summary>
    public bool Started => _outgoing is not null;

    private void Run()
    {
        try
        {
            while (!_disposed)
            {
                RemotePagesRequest request;
                using (var frame = FaultFrame.Read(_socket, _peer) ?? throw new EndOfStreamException())
                {
                    try { request = RemotePagesRequest.Parser.ParseFrom(frame.Payload); }
                    catch (InvalidProtocolBufferException e)
                    {
                        Refuse(StatusCode.InvalidArgument, $"garbled request: {e.Message}", close: true);
                        return;
                    }
                }
                Answer(request);
            }
        }
        catch (EndOfStreamException)
        {
            // The destination closed the channel between requests: its migration ended or it stopped faulting.
        }
        catch (FaultChannelException e)
        {
            if (!_disposed)
            {
                Error = e;
                try { Refuse(StatusCode.InvalidArgument, e.Message, close: true); } catch (Exception ignored) when (ignored is SocketException or ObjectDisposedException) { }
                Error = e;
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            if (!_disposed) Error = e;
        }
        finally
        {
            _socket.Dispose();
            _ended.TrySetResult();
        }
    }

    private void Answer(RemotePagesRequest request)
    {
        if (request.PageNumbers.Count == 0)
        {
            Refuse(StatusCode.InvalidArgument, "page_numbers is empty.", close: false);
            return;
        }
        if (request.MigrationId != _outgoing.MigrationId || request.Vm != _outgoing.Vm)
        {
            Refuse(StatusCode.InvalidArgument, $"this channel serves migration {_outgoing.MigrationId} of VM '{_outgoing.Vm}', not {request.MigrationId} of '{request.Vm}'.", close: false);
            return;
        }
        RemotePagesResponse response;
        try { response = _outgoing.Serve(request); }
        catch (ArgumentOutOfRangeException e)
        {
            Refuse(StatusCode.OutOfRange, e.Message, close: false);
            return;
        }
        catch (Codec.UnsupportedChecksumException e)
        {
            Refuse(StatusCode.InvalidArgument, e.Message, close: false);
            return;
        }
        try { FaultFrame.WriteMessage(_socket, response); }
        finally { _outgoing.ReplyWritten((long)response.ReadAtNs); }
    }

    private void Refuse(StatusCode code, string error, bool close)
    {
        FaultFrame.WriteMessage(_socket, new RemotePagesResponse { ErrorCode = (uint)code, ErrorMessage = $"fault channel: {error}" });
        if (!close) return;
        Error = new FaultChannelException($"fault channel from {_peer}: {error}");
        LingerClose();
    }

    // Closing with the garbled bytes still unread would reset the connection, and a reset can drop the error reply
    // before the destination reads it: end our side, then drain until the destination closes (or a second passes).
    private void LingerClose()
    {
        try
        {
            _socket.Shutdown(SocketShutdown.Send);
            _socket.ReceiveTimeout = 1000;
            Span<byte> sink = stackalloc byte[4096];
            while (_socket.Receive(sink) > 0) { }
        }
        catch (SocketException) { }
    }

    /// <summary>Closes the channel; the serving thread ends.</summary>
    public void Dispose()
    {
        _disposed = true;
        _socket.Dispose();
        if (!Started) _ended.TrySetResult();
    }
}
