using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Rpc;

namespace MigrationFabric.Migration.DataPlane.Tcp;

/// <summary>An agent's one TCP listener for data channels: a connection presents a token from OpenDataChannel and is then served for what the token was issued.</summary>
/// <remarks>A dedicated accept loop and one read loop per connection; disposing closes the listener and every connection.</remarks>
public sealed class DataChannelListener : IAsyncDisposable
{
    private readonly Socket _listener;
    private readonly DataChannelTokens _tokens;
    private readonly Func<DataChannelGrant, DataChannelSocket, CancellationToken, Task> _serve;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<DataChannelSocket, Task> _connections = new();
    private readonly Task _accepting;
    private int _disposed;

    private DataChannelListener(DataChannelListenerOptions options, Socket listener, Func<DataChannelGrant, DataChannelSocket, CancellationToken, Task> serve)
    {
        Options = options;
        _listener = listener;
        _serve = serve;
        _tokens = new DataChannelTokens(options.TimeProvider, options.TokenLifetime);
        Port = ((IPEndPoint)listener.LocalEndPoint!).Port;
        _accepting = Task.Run(AcceptLoopAsync);
    }

    /// <summary>The options it was started with.</summary>
    public DataChannelListenerOptions Options { get; }

    /// <summary>The port it listens on.</summary>
    public int Port { get; }

    /// <summary>Connections being served now.</summary>
    public int Connections => _connections.Count;

    /// <summary>Tokens issued and not yet presented (expired ones included until the next issue).</summary>
    public int OutstandingTokens => _tokens.Outstanding;

    /// <summary>Binds and starts accepting; <paramref name="serve"/> runs a connection whose token was accepted (the cancellation token fires at disposal).</summary>
    internal static DataChannelListener Start(DataChannelListenerOptions options, Func<DataChannelGrant, DataChannelSocket, CancellationToken, Task> serve)
    {
        options.Validate();
        var socket = new Socket(options.Address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Bind(new IPEndPoint(options.Address, options.Port));
            socket.Listen(128);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        return new DataChannelListener(options, socket, serve);
    }

    /// <summary>A single-use token for one channel of <paramref name="migrationId"/>.</summary>
    internal byte[] Issue(string migrationId, uint streamIndex, DataChannelPurpose purpose)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        return _tokens.Issue(migrationId, streamIndex, purpose);
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket accepted;
            try { accepted = await _listener.AcceptAsync(_stop.Token).ConfigureAwait(false); }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException) { if (_stop.IsCancellationRequested) return; continue; }
            DataChannelSocket connection;
            try { connection = new DataChannelSocket(accepted, Options.SocketBufferSize); }
            catch (SocketException) { accepted.Dispose(); continue; }
            var served = new TaskCompletionSource();
            _connections[connection] = served.Task;
            // Its own loop: a connection's reads never wait behind another's.
            _ = Task.Run(async () =>
            {
                try { await HandleAsync(connection).ConfigureAwait(false); }
                finally
                {
                    connection.Dispose();
                    _connections.TryRemove(connection, out _);
                    served.TrySetResult();
                }
            });
            // Disposal may have run between the accept and the registration.
            if (_stop.IsCancellationRequested) connection.Dispose();
        }
    }

    private async Task HandleAsync(DataChannelSocket connection)
    {
        var token = new byte[DataChannelTokens.Size];
        try
        {
            using (var handshake = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token))
            {
                handshake.CancelAfter(Options.HandshakeTimeout);
                // A connection that never presents a whole token has no migration to blame: it is closed without a word.
                if (!await connection.ReadExactlyAsync(token, "the token", handshake.Token).ConfigureAwait(false)) return;
            }
            if (_tokens.Take(token) is not { } grant)
            {
                await connection.WriteMessageAsync(DataChannelErrors.Ack(StatusCode.PermissionDenied,
                    $"data channel: the token is unknown, expired or already used (OpenDataChannel issues single-use tokens valid for {Options.TokenLifetime.TotalSeconds:0.#} s)."),
                    _stop.Token).ConfigureAwait(false);
                await connection.LingerCloseAsync().ConfigureAwait(false);
                return;
            }
            await _serve(grant, connection, _stop.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // The peer went away or the listener is stopping; the served migration has recorded what it means.
        }
    }

    /// <summary>Stops accepting and closes every connection (their migrations see the source lost).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _stop.Cancel();
        _listener.Dispose();
        foreach (var c in _connections.Keys) c.Dispose();
        try { await _accepting.ConfigureAwait(false); } catch (OperationCanceledException) { }
        await Task.WhenAll(_connections.Values).ConfigureAwait(false);
        _stop.Dispose();
    }
}

/// <summary>A data channel's closing error, as a PageAck frame.</summary>
internal static class DataChannelErrors
{
    public static PageAck Ack(StatusCode code, string message) => new() { ErrorCode = (uint)code, ErrorMessage = message };
}
