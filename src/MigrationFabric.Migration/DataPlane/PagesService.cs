using System.Collections.Concurrent;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Migration.Codec;
using MigrationFabric.Rpc;
using MigrationFabric.Rpc.Server;

namespace MigrationFabric.Migration.DataPlane;

/// <summary>An agent's data plane (migrationfabric.v1.Pages): receives migrations it was told to expect and serves pages of migrations it is the source of.</summary>
/// <remarks>One per host agent: add <see cref="Definition"/> to the agent's <see cref="RpcServer"/>.</remarks>
public sealed class PagesService
{
    private readonly ConcurrentDictionary<string, IncomingMigration> _incoming = new();
    private readonly ConcurrentDictionary<string, OutgoingMigration> _outgoing = new();
    private readonly ConcurrentDictionary<string, RemotePaging.RemotePageStore> _stores = new();
    private readonly PooledPageStreamParser _pageStreamParser = new();

    /// <summary>Creates the service with nothing expected.</summary>
    public PagesService()
    {
        Definition = RpcServiceDefinition.CreateBuilder(PagesContract.Service)
            .AddDuplexStreaming(PagesContract.PageStream.WithDeserializers(requestDeserializer: _pageStreamParser.Parse), PageStreamAsync)
            .AddUnary<RemotePagesRequest, RemotePagesResponse>("RemotePages", (r, c) => Task.FromResult(RemotePages(r, c)))
            .AddUnary<StorePagesRequest, StorePagesResponse>("StorePages", (r, c) => Task.FromResult(StorePages(r)))
            .AddUnary<SwitchOverRequest, SwitchOverResponse>("SwitchOver", SwitchOverAsync)
            .AddUnary<VerifyPagesRequest, VerifyPagesResponse>("VerifyPages", VerifyAsync)
            .AddUnary<AbortMigrationRequest, AbortMigrationResponse>("AbortMigration", (r, c) => Task.FromResult(Abort(r)))
            .AddUnary<OpenDataChannelRequest, OpenDataChannelResponse>("OpenDataChannel", (r, c) => Task.FromResult(OpenDataChannel(r)))
            .Build();
    }

    /// <summary>The service to add to the agent's RpcServer.</summary>
    public RpcServiceDefinition Definition { get; }

    /// <summary>The data-channel listener, once <see cref="StartDataChannels"/> ran; without it OpenDataChannel fails with FAILED_PRECONDITION.</summary>
    public Tcp.DataChannelListener? DataChannels => _dataChannels;

    private Tcp.DataChannelListener? _dataChannels;

    /// <summary>Starts this agent's one TCP listener for data channels (bind it to the address of the agent's gRPC endpoint); returns it.</summary>
    public Tcp.DataChannelListener StartDataChannels(Tcp.DataChannelListenerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (_dataChannels is not null) throw new InvalidOperationException("this agent's data-channel listener is already started.");
        var listener = Tcp.DataChannelListener.Start(options, ServeDataChannelAsync);
        if (Interlocked.CompareExchange(ref _dataChannels, listener, null) is not null)
        {
            _ = listener.DisposeAsync().AsTask();
            throw new InvalidOperationException("this agent's data-channel listener is already started.");
        }
        return listener;
    }

    /// <summary>Stops the data-channel listener and closes its connections (their migrations see the source lost).</summary>
    public async ValueTask StopDataChannelsAsync()
    {
        if (Interlocked.Exchange(ref _dataChannels, null) is { } listener) await listener.DisposeAsync().ConfigureAwait(false);
    }

    private OpenDataChannelResponse OpenDataChannel(OpenDataChannelRequest request)
    {
        if (request.Purpose is not (DataChannelPurpose.PageStream or DataChannelPurpose.RemoteFaults))
            throw new RpcException(StatusCode.InvalidArgument, $"OpenDataChannel: purpose {request.Purpose} is not served here (only {DataChannelPurpose.PageStream} and {DataChannelPurpose.RemoteFaults}).");
        if (request.Purpose == DataChannelPurpose.RemoteFaults && request.StreamIndex != 0)
            throw new RpcException(StatusCode.InvalidArgument, $"OpenDataChannel: a {DataChannelPurpose.RemoteFaults} channel has stream_index 0, was {request.StreamIndex}.");
        Expected(request.MigrationId, "OpenDataChannel");
        if (_dataChannels is not { } listener)
            throw new RpcException(StatusCode.FailedPrecondition, "OpenDataChannel: this agent runs no data-channel listener (PagesService.StartDataChannels); use the gRPC data channel (MigrationOptions.DataChannel = Grpc).");
        byte[] token;
        try { token = listener.Issue(request.MigrationId, request.StreamIndex, request.Purpose); }
        catch (ObjectDisposedException) { throw new RpcException(StatusCode.Unavailable, "OpenDataChannel: this agent's data-channel listener is stopping."); }
        return new OpenDataChannelResponse { Port = (uint)listener.Port, Token = Google.Protobuf.ByteString.CopyFrom(token) };
    }

    private async Task ServeDataChannelAsync(Tcp.DataChannelGrant grant, Tcp.DataChannelSocket socket, CancellationToken cancellationToken)
    {
        if (grant.Purpose == DataChannelPurpose.RemoteFaults)
        {
            // Post-copy faults (FaultChannel/): held until the migration ends; a migration gone meanwhile just closes it.
            if (_incoming.TryGetValue(grant.MigrationId, out var faulting))
                await FaultChannel.IncomingFaultChannel.ServeAsync(faulting, socket.Socket, cancellationToken).ConfigureAwait(false);
            return;
        }
        var reader = new Tcp.DataChannelRequestReader(socket, _pageStreamParser, _dataChannels?.Options.MaxMessageSize ?? 64 << 20);
        RpcException? error = null;
        try
        {
            await ReceivePageStreamAsync(reader, (ack, ct) => socket.WriteMessageAsync(ack, ct).AsTask(), grant, cancellationToken).ConfigureAwait(false);
        }
        catch (RpcException e) { error = e; }
        catch (Tcp.DataChannelFrameException e)
        {
            // Past the open message ReceivePageStreamAsync has already aborted the migration here (source lost); the source hears why.
            error = new RpcException(StatusCode.InvalidArgument, $"PageStream {grant.StreamIndex} (data channel): garbled frame: {e.Message}");
        }
        if (error is not null)
            await socket.WriteMessageAsync(Tcp.DataChannelErrors.Ack(error.StatusCode, error.Status.Detail), cancellationToken).ConfigureAwait(false);
        await socket.LingerCloseAsync().ConfigureAwait(false);
    }

    /// <summary>Expects <paramref name="migration"/>: its streams, switch-over and check are accepted from now on, until it completes or fails.</summary>
    public IncomingMigration Accept(IncomingMigration migration)
    {
        ArgumentNullException.ThrowIfNull(migration);
        if (!_incoming.TryAdd(migration.MigrationId, migration))
            throw new InvalidOperationException($"migration {migration.MigrationId} is already expected here.");
        migration.Completion.ContinueWith(_ => _incoming.TryRemove(new(migration.MigrationId, migration)), TaskScheduler.Default);
        return migration;
    }

    /// <summary>The incoming migration with this id, if expected.</summary>
    public IncomingMigration? FindIncoming(string migrationId) => _incoming.GetValueOrDefault(migrationId);

    /// <summary>Holds a split VM's pages here (sub-host): its main host's RemotePages and StorePages calls for that VM are served from <paramref name="store"/> until <see cref="Release"/>.</summary>
    public RemotePaging.RemotePageStore Hold(RemotePaging.RemotePageStore store)
    {
        ArgumentNullException.ThrowIfNull(store);
        if (!_stores.TryAdd(store.Vm, store)) throw new InvalidOperationException($"pages of VM {store.Vm} are already held here.");
        return store;
    }

    /// <summary>Stops holding <paramref name="store"/>'s VM here.</summary>
    public void Release(RemotePaging.RemotePageStore store) => _stores.TryRemove(new(store.Vm, store));

    private StorePagesResponse StorePages(StorePagesRequest request)
    {
        if (string.IsNullOrEmpty(request.Vm)) throw new RpcException(StatusCode.InvalidArgument, "StorePages: vm is required.");
        if (!_stores.TryGetValue(request.Vm, out var store))
            throw new RpcException(StatusCode.NotFound, $"StorePages: this host holds no pages of VM '{request.Vm}'.");
        try { return store.Store(request); }
        catch (ObjectDisposedException e) { throw new RpcException(StatusCode.NotFound, $"StorePages: {e.Message}"); }
        catch (PageChecksumException e) { throw new RpcException(StatusCode.DataLoss, $"StorePages: {e.Message}"); }
        catch (PageBatchFormatException e) { throw new RpcException(StatusCode.InvalidArgument, $"StorePages: {e.Message}"); }
        catch (UnsupportedChecksumException e) { throw new RpcException(StatusCode.InvalidArgument, $"StorePages: {e.Message}"); }
        catch (InvalidOperationException e) { throw new RpcException(StatusCode.FailedPrecondition, $"StorePages: {e.Message}"); }
    }

    /// <summary>How this agent served remote faults of migrations it is the source of (post-copy), step by step.</summary>
    public RemotePagesServing RemotePagesServed { get; } = new();

    internal void Offer(OutgoingMigration migration)
    {
        migration.Stats = RemotePagesServed;
        if (!_outgoing.TryAdd(migration.MigrationId, migration))
            throw new InvalidOperationException($"migration {migration.MigrationId} already serves pages here.");
    }

    internal void Withdraw(OutgoingMigration migration) => _outgoing.TryRemove(new(migration.MigrationId, migration));

    private IncomingMigration Expected(string migrationId, string what)
    {
        if (string.IsNullOrEmpty(migrationId)) throw new RpcException(StatusCode.InvalidArgument, $"{what}: migration_id is required.");
        return _incoming.TryGetValue(migrationId, out var m) ? m
            : throw new RpcException(StatusCode.FailedPrecondition, $"{what}: no migration '{migrationId}' is expected on this host.");
    }

    private Task PageStreamAsync(IAsyncStreamReader<PageStreamMessage> requests, IServerStreamWriter<PageAck> responses, ServerCallContext context) =>
        ReceivePageStreamAsync(requests, responses.WriteAsync, grant: null, context.CancellationToken);

    // One page stream at the destination, whichever transport carries it: a PageStream call, or a data channel opened with grant.
    private async Task ReceivePageStreamAsync(IAsyncStreamReader<PageStreamMessage> requests, Func<PageAck, CancellationToken, Task> writeAck,
        Tcp.DataChannelGrant? grant, CancellationToken ct)
    {
        if (!await requests.MoveNext(ct).ConfigureAwait(false))
            throw new RpcException(StatusCode.InvalidArgument, "PageStream: the stream ended before its open message.");
        var first = requests.Current;
        if (first.KindCase != PageStreamMessage.KindOneofCase.Open)
            throw new RpcException(StatusCode.InvalidArgument, $"PageStream: the first message must be open, was {first.KindCase}.");
        var open = first.Open;
        if (grant is not null && (open.MigrationId != grant.MigrationId || open.StreamIndex != grant.StreamIndex))
            throw new RpcException(StatusCode.InvalidArgument,
                $"PageStream: the data channel was opened for migration {grant.MigrationId} stream {grant.StreamIndex}, but its open message names migration {open.MigrationId} stream {open.StreamIndex}.");
        var migration = Expected(open.MigrationId, "PageStream");
        if (open.Vm != migration.Vm)
            throw new RpcException(StatusCode.InvalidArgument, $"PageStream: migration {open.MigrationId} moves VM '{migration.Vm}', not '{open.Vm}'.");
        if (open.PageSize != Page.Size)
            throw new RpcException(StatusCode.InvalidArgument, $"PageStream: page_size {open.PageSize} is not supported (only {Page.Size}).");
        if (open.TotalPages != (ulong)migration.Memory.PageCount)
            throw new RpcException(StatusCode.InvalidArgument, $"PageStream: total_pages {open.TotalPages} differs from the destination memory's {migration.Memory.PageCount} pages.");
        // The checksums this stream's batches carry are kept as the pages' digests: every stream of the migration, its
        // switch-over and its integrity check must name the same kind.
        try { migration.UseChecksum(PageChecksums.FromWire(open.Codec?.Checksum ?? ChecksumKind.Unspecified), $"stream {open.StreamIndex}"); }
        catch (ArgumentException e) { throw new RpcException(StatusCode.InvalidArgument, $"PageStream: {e.Message}"); }
        uint window = migration.Options.Window;
        await writeAck(new PageAck { AckedThrough = 0, Window = window }, ct).ConfigureAwait(false);
        ulong expected = 1, applied = 0;
        try
        {
            while (await requests.MoveNext(ct).ConfigureAwait(false))
            {
                var message = requests.Current;
                if (message.KindCase == PageStreamMessage.KindOneofCase.Close) return;
                if (message.KindCase != PageStreamMessage.KindOneofCase.Batch)
                    throw new RpcException(StatusCode.InvalidArgument, $"PageStream {open.StreamIndex}: expected a batch or close, got {message.KindCase}.");
                var batch = message.Batch;
                try
                {
                    if (batch.Sequence != expected)
                        throw new RpcException(StatusCode.InvalidArgument, $"PageStream {open.StreamIndex}: batch sequence {batch.Sequence}, expected {expected}.");
                    // Post-copy: remote faults go first (see IncomingMigration.YieldToFaultsAsync).
                    if (migration.RemoteFaultsInFlight > 0) await migration.YieldToFaultsAsync(ct).ConfigureAwait(false);
                    applied += (ulong)migration.Apply(batch);
                }
                catch (PageChecksumException e)
                {
                    var error = new RpcException(StatusCode.DataLoss, e.Message);
                    migration.Fail(e);
                    throw error;
                }
                catch (PageBatchFormatException e)
                {
                    migration.Fail(e);
                    throw new RpcException(StatusCode.InvalidArgument, e.Message);
                }
                catch (InvalidOperationException e)
                {
                    throw new RpcException(StatusCode.FailedPrecondition, e.Message);
                }
                finally
                {
                    _pageStreamParser.Release(batch);
                }
                // Post-copy narrows the window (each ack carries it): fewer push bytes in flight for a remote fault to wait behind.
                uint granted = migration.Phase == IncomingPhase.PostCopy ? Math.Min(window, migration.Options.PostCopyWindow) : window;
                await writeAck(new PageAck { AckedThrough = expected, Window = granted, PagesApplied = applied }, ct).ConfigureAwait(false);
                expected++;
            }
            // The sender's end of stream without a close message: it went away mid-migration.
            migration.SourceLost(new IOException($"page stream {open.StreamIndex} ended without a close message."));
        }
        catch (Exception e) when (e is not RpcException)
        {
            migration.SourceLost(e);
            throw;
        }
    }

    private RemotePagesResponse RemotePages(RemotePagesRequest request, ServerCallContext context)
    {
        if (request.PageNumbers.Count == 0) throw new RpcException(StatusCode.InvalidArgument, "RemotePages: page_numbers is empty.");
        if (string.IsNullOrEmpty(request.MigrationId) && _stores.TryGetValue(request.Vm, out var store))
        {
            try { return store.Serve(request); }
            catch (ObjectDisposedException e) { throw new RpcException(StatusCode.NotFound, $"RemotePages: {e.Message}"); }
            catch (ArgumentOutOfRangeException e) { throw new RpcException(StatusCode.OutOfRange, $"RemotePages: {e.Message}"); }
            catch (UnsupportedChecksumException e) { throw new RpcException(StatusCode.InvalidArgument, $"RemotePages: {e.Message}"); }
        }
        if (!_outgoing.TryGetValue(request.MigrationId, out var outgoing))
            throw new RpcException(StatusCode.NotFound, $"RemotePages: this host serves no pages for migration '{request.MigrationId}'.");
        if (request.Vm != outgoing.Vm)
            throw new RpcException(StatusCode.InvalidArgument, $"RemotePages: migration {request.MigrationId} moves VM '{outgoing.Vm}', not '{request.Vm}'.");
        RemotePagesResponse response;
        try
        {
            response = outgoing.Serve(request);
        }
        catch (ArgumentOutOfRangeException e)
        {
            throw new RpcException(StatusCode.OutOfRange, $"RemotePages: {e.Message}");
        }
        catch (UnsupportedChecksumException e)
        {
            throw new RpcException(StatusCode.InvalidArgument, $"RemotePages: {e.Message}");
        }
        // The background push holds off until the reply has left, not only while it is built: on a shared core the
        // push's batch encoding would otherwise delay the reply's write. Kestrel reports completion after the last frame.
        try
        {
            context.HttpContext.Response.OnCompleted(static state =>
            {
                var (o, readAt) = ((OutgoingMigration, long))state;
                o.ReplyWritten(readAt);
                return Task.CompletedTask;
            }, (outgoing, (long)response.ReadAtNs));
        }
        catch (InvalidOperationException)
        {
            outgoing.ReplyWritten(0);
        }
        return response;
    }

    private async Task<SwitchOverResponse> SwitchOverAsync(SwitchOverRequest request, ServerCallContext context)
    {
        var migration = Expected(request.MigrationId, "SwitchOver");
        try
        {
            return await migration.SwitchOverAsync(request, context.CancellationToken).ConfigureAwait(false);
        }
        catch (ArgumentException e) { throw new RpcException(StatusCode.InvalidArgument, $"SwitchOver: {e.Message}"); }
        catch (InvalidOperationException e) { throw new RpcException(StatusCode.FailedPrecondition, $"SwitchOver: {e.Message}"); }
    }

    private async Task<VerifyPagesResponse> VerifyAsync(VerifyPagesRequest request, ServerCallContext context)
    {
        var migration = Expected(request.MigrationId, "VerifyPages");
        try
        {
            return await migration.VerifyAsync(request, context.CancellationToken).ConfigureAwait(false);
        }
        catch (ArgumentException e) { throw new RpcException(StatusCode.InvalidArgument, $"VerifyPages: {e.Message}"); }
        catch (InvalidOperationException e) { throw new RpcException(StatusCode.FailedPrecondition, $"VerifyPages: {e.Message}"); }
        catch (TimeoutException e) { throw new RpcException(StatusCode.DeadlineExceeded, $"VerifyPages: {e.Message}"); }
        catch (MigrationSourceLostException e) { throw new RpcException(StatusCode.DataLoss, e.Message); }
        catch (PageChecksumException e) { throw new RpcException(StatusCode.DataLoss, e.Message); }
        catch (PageBatchFormatException e) { throw new RpcException(StatusCode.DataLoss, e.Message); }
    }

    private AbortMigrationResponse Abort(AbortMigrationRequest request)
    {
        if (!_incoming.TryGetValue(request.MigrationId, out var migration)) return new AbortMigrationResponse { Found = false };
        return new AbortMigrationResponse { Found = migration.Abort(string.IsNullOrEmpty(request.Reason) ? "aborted by the source" : request.Reason) };
    }
}
