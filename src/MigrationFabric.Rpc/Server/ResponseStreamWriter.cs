using Google.Protobuf;

namespace MigrationFabric.Rpc.Server;

/// <summary>A server call's response stream: each message is framed into the response pipe and flushed.</summary>
internal sealed class ResponseStreamWriter<T> : IServerStreamWriter<T>
    where T : class, IMessage<T>
{
    private readonly ServerCallContext _context;
    private int _writing;
    private volatile bool _completed;

    public ResponseStreamWriter(ServerCallContext context)
    {
        _context = context;
    }

    public async Task WriteAsync(T message, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (_completed)
        {
            throw new InvalidOperationException("The call has ended; its response stream can no longer be written.");
        }

        if (Interlocked.Exchange(ref _writing, 1) == 1)
        {
            throw new InvalidOperationException("Only one write can be pending on a response stream at a time.");
        }

        try
        {
            if (cancellationToken.CanBeCanceled)
            {
                using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _context.CancellationToken);
                await _context.WriteMessageAsync(message, flush: true, linked.Token).ConfigureAwait(false);
            }
            else
            {
                await _context.WriteMessageAsync(message, flush: true, _context.CancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            Volatile.Write(ref _writing, 0);
        }
    }

    public void Complete() => _completed = true;
}
