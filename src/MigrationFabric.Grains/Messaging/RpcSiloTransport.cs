using System.Collections.Concurrent;
using System.Net;
using Google.Protobuf;
using MigrationFabric.Grains.Membership;
using MigrationFabric.Grains.Messaging.Wire;
using MigrationFabric.Rpc;
using MigrationFabric.Rpc.Client;
using MigrationFabric.Rpc.Server;

namespace MigrationFabric.Grains.Messaging;

/// <summary>Options of the Rpc silo transport.</summary>
public sealed class RpcSiloTransportOptions
{
    /// <summary>Address to listen on. Default loopback.</summary>
    public IPAddress ListenAddress { get; set; } = IPAddress.Loopback;

    /// <summary>Port to listen on; 0 picks a free one. Default 0.</summary>
    public int Port { get; set; }

    /// <summary>Largest silo message in either direction. Default 64 MiB.</summary>
    public int MaxMessageSize { get; set; } = 64 * 1024 * 1024;

    /// <summary>Time allowed to open a connection to a peer; beyond it calls fail as unavailable. Default 5 s.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid option.</summary>
    public void Validate()
    {
        if (Port is < 0 or > 65535) throw new ArgumentException($"RpcSiloTransportOptions.Port must be in 0..65535 (got {Port}).");
        if (MaxMessageSize < 1024) throw new ArgumentException($"RpcSiloTransportOptions.MaxMessageSize must be at least 1024 (got {MaxMessageSize}).");
        if (ConnectTimeout <= TimeSpan.Zero) throw new ArgumentException($"RpcSiloTransportOptions.ConnectTimeout must be positive (got {ConnectTimeout}).");
    }
}

/// <summary>Silo messaging over the fabric's gRPC layer: one duplex stream per ordered silo pair, calls multiplexed by id.</summary>
public sealed class RpcSiloTransport : ISiloTransport
{
    internal static readonly Method<SiloFrame, SiloFrame> ConnectMethod =
        Method<SiloFrame, SiloFrame>.Create(SiloMessagingReflection.Descriptor.Services[0], "Connect");

    private readonly RpcSiloTransportOptions _options;
    private readonly ConcurrentDictionary<SiloAddress, Lazy<PeerConnection>> _peers = new();
    private readonly CancellationTokenSource _stopping = new();
    private RpcServer? _server;
    private ISiloMessageHandler? _handler;
    private int _disposed;

    /// <summary>Creates a transport (listening starts in <see cref="StartAsync"/>; a cluster client never starts it).</summary>
    public RpcSiloTransport(RpcSiloTransportOptions? options = null)
    {
        _options = options ?? new RpcSiloTransportOptions();
        _options.Validate();
    }

    /// <inheritdoc />
    public async Task<int> StartAsync(ISiloMessageHandler handler, CancellationToken cancellationToken)
    {
        _handler = handler;
        var server = new RpcServer(new RpcServerOptions
        {
            ListenAddress = _options.ListenAddress,
            Port = _options.Port,
            MaxReceiveMessageSize = _options.MaxMessageSize,
            EnableReflection = false,
        });
        server.AddService(RpcServiceDefinition.CreateBuilder(SiloMessagingReflection.Descriptor.Services[0])
            .AddDuplexStreaming<SiloFrame, SiloFrame>("Connect", ServeAsync)
            .Build());
        await server.StartAsync(cancellationToken).ConfigureAwait(false);
        _server = server;
        return server.Port;
    }

    /// <inheritdoc />
    public Task<ReadOnlyMemory<byte>> SendAsync(SiloAddress target, ReadOnlyMemory<byte> request, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var lazy = _peers.GetOrAdd(target, t => new Lazy<PeerConnection>(() => new PeerConnection(this, t)));
        return lazy.Value.SendAsync(request, cancellationToken);
    }

    /// <inheritdoc />
    public void Disconnect(SiloAddress silo)
    {
        if (_peers.TryRemove(silo, out var lazy) && lazy.IsValueCreated)
            lazy.Value.Fail(new InvalidOperationException("membership declared the silo dead"));
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _stopping.Cancel();
        foreach (var silo in _peers.Keys) Disconnect(silo);
        if (_server is not null)
        {
            // The serving loops end on _stopping, so Kestrel has nothing left to drain.
            using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            await _server.StopAsync(grace.Token).ConfigureAwait(false);
            await _server.DisposeAsync().ConfigureAwait(false);
        }
        _stopping.Dispose();
    }

    private void Forget(SiloAddress silo, PeerConnection connection)
    {
        if (_peers.TryGetValue(silo, out var lazy) && lazy.IsValueCreated && ReferenceEquals(lazy.Value, connection))
            _peers.TryRemove(new KeyValuePair<SiloAddress, Lazy<PeerConnection>>(silo, lazy));
    }

    private async Task ServeAsync(IAsyncStreamReader<SiloFrame> requests, IServerStreamWriter<SiloFrame> responses, ServerCallContext context)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, _stopping.Token);
        var token = stop.Token;
        var writeLock = new SemaphoreSlim(1, 1);
        var running = new ConcurrentDictionary<ulong, Task>();
        try
        {
            while (await requests.MoveNext(token).ConfigureAwait(false))
            {
                var frame = requests.Current;
                running[frame.CallId] = AnswerAsync(frame, responses, writeLock, running, token);
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            return;
        }
        await Task.WhenAll(running.Values).ConfigureAwait(false);
    }

    private async Task AnswerAsync(SiloFrame frame, IServerStreamWriter<SiloFrame> responses, SemaphoreSlim writeLock,
        ConcurrentDictionary<ulong, Task> running, CancellationToken token)
    {
        await Task.Yield(); // the read loop goes on reading while this call runs
        try
        {
            var response = await _handler!.HandleAsync(frame.Payload.Memory, token).ConfigureAwait(false);
            var reply = new SiloFrame { CallId = frame.CallId, Payload = UnsafeByteOperations.UnsafeWrap(response) };
            await writeLock.WaitAsync(token).ConfigureAwait(false);
            try
            {
                await responses.WriteAsync(reply, token).ConfigureAwait(false);
            }
            finally
            {
                writeLock.Release();
            }
        }
        catch (Exception) when (token.IsCancellationRequested)
        {
            // The peer or this silo went away; nobody is left to answer.
        }
        finally
        {
            running.TryRemove(frame.CallId, out _);
        }
    }

    /// <summary>The outgoing duplex stream to one peer with its table of calls awaiting a response.</summary>
    private sealed class PeerConnection
    {
        private readonly RpcSiloTransport _owner;
        private readonly SiloAddress _peer;
        private readonly RpcChannel _channel;
        private readonly AsyncDuplexStreamingCall<SiloFrame, SiloFrame> _call;
        private readonly ConcurrentDictionary<ulong, TaskCompletionSource<ReadOnlyMemory<byte>>> _pending = new();
        private readonly SemaphoreSlim _writeLock = new(1, 1);
        private Exception? _failure;
        private long _nextId;

        public PeerConnection(RpcSiloTransport owner, SiloAddress peer)
        {
            _owner = owner;
            _peer = peer;
            _channel = new RpcChannel(new Uri($"http://{peer.Endpoint}"), new RpcChannelOptions
            {
                MaxReceiveMessageSize = owner._options.MaxMessageSize,
                ConnectTimeout = owner._options.ConnectTimeout,
            });
            _call = _channel.AsyncDuplexStreamingCall(ConnectMethod);
            _ = ReadLoopAsync();
        }

        public async Task<ReadOnlyMemory<byte>> SendAsync(ReadOnlyMemory<byte> request, CancellationToken cancellationToken)
        {
            if (Volatile.Read(ref _failure) is { } failed) throw Unavailable(failed);
            ulong id = (ulong)Interlocked.Increment(ref _nextId);
            var done = new TaskCompletionSource<ReadOnlyMemory<byte>>(TaskCreationOptions.RunContinuationsAsynchronously);
            _pending[id] = done;
            if (Volatile.Read(ref _failure) is { } failedNow)
            {
                _pending.TryRemove(id, out _);
                throw Unavailable(failedNow);
            }
            using var registration = cancellationToken.Register(() =>
            {
                if (_pending.TryRemove(id, out var t)) t.TrySetCanceled(cancellationToken);
            });
            var frame = new SiloFrame { CallId = id, Payload = ByteString.CopyFrom(request.Span) };
            try
            {
                await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
                try
                {
                    await _call.RequestStream.WriteAsync(frame, cancellationToken).ConfigureAwait(false);
                }
                finally
                {
                    _writeLock.Release();
                }
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                Fail(e);
            }
            return await done.Task.ConfigureAwait(false);
        }

        public void Fail(Exception cause)
        {
            if (Interlocked.CompareExchange(ref _failure, cause, null) is not null) return;
            _owner.Forget(_peer, this);
            foreach (var id in _pending.Keys)
                if (_pending.TryRemove(id, out var t))
                    t.TrySetException(Unavailable(cause));
            _call.Dispose();
            _channel.Dispose();
        }

        private async Task ReadLoopAsync()
        {
            try
            {
                var responses = _call.ResponseStream;
                while (await responses.MoveNext(CancellationToken.None).ConfigureAwait(false))
                {
                    var frame = responses.Current;
                    if (_pending.TryRemove(frame.CallId, out var t))
                        t.TrySetResult(frame.Payload.Memory);
                }
                Fail(new InvalidOperationException("the peer closed the stream"));
            }
            catch (Exception e)
            {
                Fail(e);
            }
        }

        private SiloUnavailableException Unavailable(Exception cause) =>
            new(_peer, cause is RpcException rpc ? $"{rpc.StatusCode}: {rpc.Status.Detail}" : cause.Message, cause);
    }
}
