using MigrationFabric.Contracts.V1;
using MigrationFabric.Migration.Codec;
using MigrationFabric.Rpc;
using MigrationFabric.Rpc.Client;

namespace MigrationFabric.Migration.DataPlane;

/// <summary>One page stream (a PageStream call or a TCP data channel): writes batches in sequence, keeps at most the receiver's window in flight, reads acknowledgements.</summary>
internal sealed class PageStreamSender : IAsyncDisposable
{
    private readonly IPageStreamTransport _transport;
    private readonly DataPlaneCounters _counters;
    private readonly TokenBucket? _bucket;
    private readonly AsyncSignal _acks = new();
    private readonly CancellationTokenSource _stop = new();
    private Task _ackLoop = Task.CompletedTask;
    private ulong _sent, _acked;
    private uint _window;
    private bool _opened;
    private volatile bool _closing;
    private Exception? _fault;

    private PageStreamSender(IPageStreamTransport transport, DataPlaneCounters counters, TokenBucket? bucket)
    {
        _transport = transport;
        _counters = counters;
        _bucket = bucket;
    }

    public int Index { get; private init; }

    /// <summary>The transport carrying this stream.</summary>
    public DataChannel Kind => _transport.Kind;

    /// <summary>Opens a PageStream call on <paramref name="channel"/> and waits for the receiver's first acknowledgement.</summary>
    public static Task<PageStreamSender> OpenAsync(RpcChannel channel, StreamOpen open, DataPlaneCounters counters, TokenBucket? bucket, CancellationToken cancellationToken) =>
        OpenAsync(new GrpcPageStreamTransport(channel), open, counters, bucket, cancellationToken);

    /// <summary>Writes the open message on <paramref name="transport"/> (owned from now on) and waits for the receiver's first acknowledgement (it grants the window or rejects the stream).</summary>
    public static async Task<PageStreamSender> OpenAsync(IPageStreamTransport transport, StreamOpen open, DataPlaneCounters counters, TokenBucket? bucket, CancellationToken cancellationToken)
    {
        var sender = new PageStreamSender(transport, counters, bucket) { Index = (int)open.StreamIndex };
        try
        {
            await transport.WriteMessageAsync(new PageStreamMessage { Open = open }, cancellationToken).ConfigureAwait(false);
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
            await _transport.WriteFrameAsync(message, frame, cancellationToken).ConfigureAwait(false);
            int zero = 0;
            var flags = batch.Batch.Flags.Span;
            for (int i = 0; i < flags.Length; i++) zero += flags[i] & PageFlags.Zero;
            _counters.AddBatch(size, batch.Pages, zero);
        }
        catch (Exception e) when (e is RpcException or IOException or System.Net.Sockets.SocketException)
        {
            // A receiver that ends the stream with an error closes it: the write may fail before the ack loop has read why.
            try { await _ackLoop.WaitAsync(TimeSpan.FromSeconds(2), CancellationToken.None).ConfigureAwait(false); } catch (TimeoutException) { }
            if (Volatile.Read(ref _fault) is { } fault) throw Failure(fault);
            throw;
        }
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
        _closing = true;
        await _transport.WriteMessageAsync(new PageStreamMessage { Close = new StreamClose { Batches = _sent, Pages = (ulong)_counters.PagesSent } }, cancellationToken).ConfigureAwait(false);
        await _transport.CompleteAsync().ConfigureAwait(false);
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
            while (await _transport.ReadAckAsync(_stop.Token).ConfigureAwait(false) is { } ack)
            {
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
            // Ending before the sender's close is a failure even with nothing in flight: the next batch would wait for an ack forever.
            if (Volatile.Read(ref _acked) < Volatile.Read(ref _sent) || !_opened || !_closing)
                Volatile.Write(ref _fault, new IOException($"page stream {Index}: the receiver ended the stream before the sender closed it, with {InFlight} batches unacknowledged."));
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

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        await _transport.DisposeAsync().ConfigureAwait(false);
        try { await _ackLoop.ConfigureAwait(false); } catch { /* the fault was recorded; disposal must not throw */ }
        _stop.Dispose();
    }
}
