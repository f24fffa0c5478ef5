namespace MigrationFabric.Rpc;

/// <summary>Reads a stream of messages, one at a time (request stream on a server, response stream on a client).</summary>
public interface IAsyncStreamReader<out T>
{
    /// <summary>The message read by the last successful <see cref="MoveNext"/>.</summary>
    T Current { get; }

    /// <summary>Reads the next message; false at the end of the stream. Throws <see cref="RpcException"/> when the call fails.</summary>
    Task<bool> MoveNext(CancellationToken cancellationToken = default);
}

/// <summary>Writes a stream of messages; one write may be pending at a time.</summary>
public interface IAsyncStreamWriter<in T>
{
    /// <summary>Writes one message; completes when the transport has accepted it (flow control applies).</summary>
    Task WriteAsync(T message, CancellationToken cancellationToken = default);
}

/// <summary>A server's response stream.</summary>
public interface IServerStreamWriter<in T> : IAsyncStreamWriter<T>
{
}

/// <summary>A client's request stream; <see cref="CompleteAsync"/> half-closes it.</summary>
public interface IClientStreamWriter<in T> : IAsyncStreamWriter<T>
{
    /// <summary>Signals that no more requests will be written (END_STREAM).</summary>
    Task CompleteAsync();
}

/// <summary>Helpers over the stream interfaces.</summary>
public static class AsyncStreamExtensions
{
    /// <summary>Enumerates every remaining message of a stream.</summary>
    public static async IAsyncEnumerable<T> ReadAllAsync<T>(
        this IAsyncStreamReader<T> reader,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(reader);
        while (await reader.MoveNext(cancellationToken).ConfigureAwait(false))
        {
            yield return reader.Current;
        }
    }
}
