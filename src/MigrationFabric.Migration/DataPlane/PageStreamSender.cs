using MigrationFabric.Contracts.V1;
using MigrationFabric.Migration.Codec;
using MigrationFabric.Rpc;
using MigrationFabric.Rpc.Client;

namespace MigrationFabric.Migration.DataPlane;

/// <summary>One PageStream call: writes batches in sequence, keeps at most the receiver's window in flight, reads acknowledgements.</summary>
internal sealed class PageStreamSender : IAsyncDisposable
{
    private readonly AsyncDuplexStreamingCall<PageStreamMessage, PageAck> _call;
    private readonly FrameSlot _slot;
    private readonly DataPlaneCounters _counters;
    private readonly TokenBucket? _bucket;
    private readonly AsyncSignal _acks = new();
    private readonly CancellationTokenSource _stop = new();
    private Task _ackLoop = Task.CompletedTask;
    private ulong _sent, _acked;
    private uint _window;
    private bool _opened;
    private Exception? _fault;

    private PageStreamSender(AsyncDuplexStreamingCall<PageStreamMessage, PageAck> call, FrameSlot slot, DataPlaneCounters counters, TokenBucket? bucket)
    {
        _call = call;
        _slot = slot;
        _counters = counters;
        _bucket = bucket;
    }

    public int Index { get; private init; }

    /// <summary>Opens the call and waits for the receiver's first acknowledgement (it grants the window or rejects the stream).</summary>
    public static async Task<PageStreamSender> OpenAsync(RpcChannel channel, StreamOpen open, DataPlaneCounters counters, TokenBucket? bucket, CancellationToken cancellationToken)
    {
        // The call lives until the group is disposed: cancelling the migration after switch-over must not cut it.
        var slot = new FrameSlot();
        var call = channel.AsyncDuplexStreamingCall(PagesContract.PageStream.WithRequestFrameEncoder(slot.Encode), new CallOptions());
        var sender = new PageStreamSender(call, slot, counters, bucket) { Index = (int)open.StreamIndex };
        try
        {
            await call.RequestStream.WriteAsync(new PageStreamMessage { Open = open }, cancellationToken).ConfigureAwait(false);
            sender._ackLoop = sender.ReadAcksAsync();
            await sender.WaitAsync(() => sender._opened, cancellationToken).ConfigureAwait(false);
            return sender;
        }
        catch
        {
            await sender.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Batches written and not yet acknowledged.</summary>
    public ulong InFlight => Volatile.Read(ref _sent) - Volatile.Read(ref _acked);

    /// <summary>Writes <paramref name="batch"/> once the window allows (and the bandwidth cap), then returns its buffers to the pool.</summary>
    public async Task SendAsync(EncodedBatch batch, CancellationToken cancellationToken)
    {
        try
        {
            await WaitAsync(() => _sent - Volatile.Read(ref _acked) < Volatile.Read(ref _window), cancellationToken).ConfigureAwait(false);
            var message = new PageStreamMessage { Batch = batch.Batch };
            batch.Batch.Sequence = _sent + 1;
            // The message laid out around the payload where the builder put it: the channel writes it without serializing (copying) it again.
            var frame = batch.Frame(_sent + 1);
            int size = frame.Length - Rpc.Framing.GrpcProtocol.FrameHeaderSize;
            if (_bucket is not null) await _bucket.TakeAsync(size, cancellationToken).ConfigureAwait(false);
            // Counted as sent before the write: its acknowledgement may arrive before WriteAsync returns.
            Volatile.Write(ref _sent, _sent + 1);
            _slot.Set(message, frame);
            try { await _call.RequestStream.WriteAsync(message, cancellationToken).ConfigureAwait(false); }
            finally { _slot.Clear(); }
            int zero = 0;
            var flags = batch.Batch.Flags.Span;
            for (int i = 0; i < flags.Length; i++) zero += flags[i] & PageFlags.Zero;
            _counters.AddBatch(size, batch.Pages, zero);
        }
        catch (RpcException) when (Volatile.Read(ref _fault) is { } fault) { throw Failure(fault); }
        finally
        {
            batch.Dispose();
        }
    }

    /// <summary>Waits until every batch written has been acknowledged.</summary>
    public Task FlushAsync(CancellationToken cancellationToken) => WaitAsync(() => Volatile.Read(ref _acked) >= Volatile.Read(ref _sent), cancellationToken);

    /// <summary>Ends the stream cleanly: close message, half-close, and the receiver's end of the call.</summary>
    public async Task CloseAsync(CancellationToken cancellationToken)
    {
        await FlushAsync(cancellationToken).ConfigureAwait(false);
        await _call.RequestStream.WriteAsync(new PageStreamMessage { Close = new StreamClose { Batches = _sent, Pages = (ulong)_counters.PagesSent } }, cancellationToken).ConfigureAwait(false);
        await _call.RequestStream.CompleteAsync().ConfigureAwait(false);
        await _ackLoop.WaitAsync(cancellationToken).ConfigureAwait(false);
        if (Volatile.Read(ref _fault) is { } fault) throw Failure(fault);
    }

    private async Task WaitAsync(Func<bool> condition, CancellationToken cancellationToken)
    {
        while (true)
        {
            var next = _acks.Next;
            if (Volatile.Read(ref _fault) is { } fault) throw Failure(fault);
            if (condition()) return;
            await next.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private Exception Failure(Exception fault) => fault is RpcException rpc
        ? new RpcException(rpc.Status, rpc.Trailers)
        : new IOException($"page stream {Index} failed: {fault.Message}", fault);

    private async Task ReadAcksAsync()
    {
        try
        {
            while (await _call.ResponseStream.MoveNext(_stop.Token).ConfigureAwait(false))
            {
                var ack = _call.ResponseStream.Current;
                ulong before = Volatile.Read(ref _acked);
                if (ack.AckedThrough > before)
                {
                    Volatile.Write(ref _acked, ack.AckedThrough);
                    _counters.AddAcked((long)(ack.AckedThrough - before));
                }
                Volatile.Write(ref _window, Math.Max(1u, ack.Window));
                _opened = true;
                _acks.Set();
            }
            if (Volatile.Read(ref _acked) < Volatile.Read(ref _sent) || !_opened)
                Volatile.Write(ref _fault, new IOException($"page stream {Index}: the receiver ended the stream with {InFlight} batches unacknowledged."));
        }
        catch (Exception e)
        {
            Volatile.Write(ref _fault, e);
        }
        finally
        {
            _acks.Set();
        }
    }

    /// <summary>The one batch frame being written on this call (one write at a time), handed to the channel by identity of its message.</summary>
    private sealed class FrameSlot
    {
        private PageStreamMessage? _message;
        private Memory<byte> _frame;

        public void Set(PageStreamMessage message, Memory<byte> frame) => (_message, _frame) = (message, frame);

        public void Clear() => (_message, _frame) = (null, default);

        // Open and close messages (and anything not set here) are serialized by protobuf as usual.
        public Memory<byte>? Encode(PageStreamMessage message) => ReferenceEquals(message, _message) ? _frame : (Memory<byte>?)null;
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _call.Dispose();
        try { await _ackLoop.ConfigureAwait(false); } catch { /* the fault was recorded; disposal must not throw */ }
        _stop.Dispose();
    }
}
