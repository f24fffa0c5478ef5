using System.Buffers;
using Google.Protobuf;
using MigrationFabric.Rpc.Framing;

namespace MigrationFabric.Rpc.Server;

/// <summary>A server call's request stream, read frame by frame from the request body pipe.</summary>
internal sealed class RequestStreamReader<T> : IAsyncStreamReader<T>
    where T : class, IMessage<T>
{
    private readonly ServerCallContext _context;
    private readonly Func<ReadOnlySequence<byte>, T> _deserializer;
    private T? _current;
    private bool _ended;
    private int _reading;

    public RequestStreamReader(ServerCallContext context, Func<ReadOnlySequence<byte>, T> deserializer)
    {
        _context = context;
        _deserializer = deserializer;
    }

    public T Current => _current ?? throw new InvalidOperationException("No message has been read yet; call MoveNext first.");

    public async Task<bool> MoveNext(CancellationToken cancellationToken = default)
    {
        if (_ended)
        {
            return false;
        }

        if (Interlocked.Exchange(ref _reading, 1) == 1)
        {
            throw new InvalidOperationException("Only one read can be pending on a request stream at a time.");
        }

        try
        {
            T? message;
            if (cancellationToken.CanBeCanceled)
            {
                using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _context.CancellationToken);
                message = await MessageFrameReader.ReadMessageAsync(_context.RequestBody, _deserializer, _context.Options.MaxReceiveMessageSize, linked.Token).ConfigureAwait(false);
            }
            else
            {
                message = await MessageFrameReader.ReadMessageAsync(_context.RequestBody, _deserializer, _context.Options.MaxReceiveMessageSize, _context.CancellationToken).ConfigureAwait(false);
            }

            if (message is null)
            {
                _ended = true;
                return false;
            }

            _current = message;
            return true;
        }
        finally
        {
            Volatile.Write(ref _reading, 0);
        }
    }

    /// <summary>Reads the one request of a unary or server-streaming call.</summary>
    public async Task<T> ReadSingleAsync()
    {
        if (!await MoveNext().ConfigureAwait(false))
        {
            throw new RpcException(StatusCode.Internal, $"Request stream ended without a message; '{_context.MethodInfo.FullName}' expects exactly one.");
        }

        var message = Current;
        if (await MoveNext().ConfigureAwait(false))
        {
            throw new RpcException(StatusCode.Internal, $"Request stream carried more than one message; '{_context.MethodInfo.FullName}' expects exactly one.");
        }

        return message;
    }
}
