using MigrationFabric.Contracts.V1;
using MigrationFabric.Rpc;
using MigrationFabric.Rpc.Client;

namespace MigrationFabric.Migration.DataPlane;

/// <summary>A page stream as a gRPC PageStream call: batch frames handed to the channel as they are laid out (no serialization copy).</summary>
internal sealed class GrpcPageStreamTransport : IPageStreamTransport
{
    private readonly AsyncDuplexStreamingCall<PageStreamMessage, PageAck> _call;
    private readonly FrameSlot _slot;

    public GrpcPageStreamTransport(RpcChannel channel)
    {
        // The call lives until the group is disposed: cancelling the migration after switch-over must not cut it.
        _slot = new FrameSlot();
        _call = channel.AsyncDuplexStreamingCall(PagesContract.PageStream.WithRequestFrameEncoder(_slot.Encode), new CallOptions());
    }

    public DataChannel Kind => DataChannel.Grpc;

    public Task WriteMessageAsync(PageStreamMessage message, CancellationToken cancellationToken) => _call.RequestStream.WriteAsync(message, cancellationToken);

    public async Task WriteFrameAsync(PageStreamMessage message, ReadOnlyMemory<byte> frame, CancellationToken cancellationToken)
    {
        _slot.Set(message, frame);
        try { await _call.RequestStream.WriteAsync(message, cancellationToken).ConfigureAwait(false); }
        finally { _slot.Clear(); }
    }

    public Task CompleteAsync() => _call.RequestStream.CompleteAsync();

    public async Task<PageAck?> ReadAckAsync(CancellationToken cancellationToken) =>
        await _call.ResponseStream.MoveNext(cancellationToken).ConfigureAwait(false) ? _call.ResponseStream.Current : null;

    public ValueTask DisposeAsync()
    {
        _call.Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>The one batch frame being written on this call (one write at a time), handed to the channel by identity of its message.</summary>
    private sealed class FrameSlot
    {
        private PageStreamMessage? _message;
        private ReadOnlyMemory<byte> _frame;

        public void Set(PageStreamMessage message, ReadOnlyMemory<byte> frame) => (_message, _frame) = (message, frame);

        public void Clear() => (_message, _frame) = (null, default);

        // Open and close messages (and anything not set here) are serialized by protobuf as usual.
        public Memory<byte>? Encode(PageStreamMessage message) =>
            ReferenceEquals(message, _message) ? System.Runtime.InteropServices.MemoryMarshal.AsMemory(_frame) : (Memory<byte>?)null;
    }
}
