using System.IO.Pipelines;
using System.Net;
using System.Net.Http.Headers;
using Google.Protobuf;
using MigrationFabric.Rpc.Framing;

namespace MigrationFabric.Rpc.Client;

/// <summary>One client call over one HTTP/2 stream: sends headers and request frames, reads response frames and the status.</summary>
internal sealed class ClientCall<TRequest, TResponse> : IClientCallState, IAsyncStreamReader<TResponse>, IClientStreamWriter<TRequest>
    where TRequest : class, IMessage<TRequest>, new()
    where TResponse : class, IMessage<TResponse>, new()
{
    private static readonly Version Http2 = new(2, 0);

    private readonly RpcChannel _channel;
    private readonly Method<TRequest, TResponse> _method;
    private readonly CallOptions _options;
    private readonly CancellationTokenSource _cts = new();
    private readonly TaskCompletionSource<Metadata> _headers = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<Stream> _requestStream = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _requestCompleted = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly object _gate = new();
    private Task<HttpResponseMessage?> _response = Task.FromResult<HttpResponseMessage?>(null);
    private HttpResponseMessage? _httpResponse;
    private PipeReader? _reader;
    private CancellationTokenRegistration _userCancellation;
    private ITimer? _deadlineTimer;
    private System.Diagnostics.Activity? _activity;
    private Status? _cancelStatus;
    private Status? _status;
    private Metadata? _trailers;
    private TResponse? _current;
    private int _reading;
    private int _writing;
    private volatile bool _requestStreamCompleted;

    public ClientCall(RpcChannel channel, Method<TRequest, TResponse> method, CallOptions options)
    {
        _channel = channel;
        _method = method;
        _options = options;
    }

    public Task<Metadata> ResponseHeadersAsync => _headers.Task;

    public TResponse Current => _current ?? throw new InvalidOperationException("No message has been read yet; call MoveNext first.");

    public void Start(TRequest? request)
    {
        var channelOptions = _channel.Options;
        TimeSpan? timeout = null;
        if (_options.Deadline is { } deadline && deadline != DateTime.MaxValue)
        {
            var remaining = deadline.ToUniversalTime() - channelOptions.TimeProvider.GetUtcNow().UtcDateTime;
            if (remaining <= TimeSpan.Zero)
            {
                Finish(new Status(StatusCode.DeadlineExceeded, "Deadline exceeded before the call started."), new Metadata());
                return;
            }

            timeout = remaining;
        }

        if (_options.CancellationToken.IsCancellationRequested)
        {
            Finish(new Status(StatusCode.Cancelled, "Call canceled by the client before it started."), new Metadata());
            return;
        }

        var size = 0;
        if (request is not null)
        {
            try
            {
                size = MessageFrameWriter.MeasureMessage(request, channelOptions.MaxSendMessageSize);
            }
            catch (RpcException e)
            {
                Finish(e.Status, new Metadata());
                return;
            }
        }

        var http = new HttpRequestMessage(HttpMethod.Post, new Uri(_channel.Address, _method.Path))
        {
            Version = Http2,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = new RequestContent(this, request, size),
        };
        http.Headers.TryAddWithoutValidation(GrpcProtocol.TeHeader, "trailers");
        http.Headers.TryAddWithoutValidation("user-agent", GrpcProtocol.UserAgent);
        if (timeout is { } t)
        {
            http.Headers.TryAddWithoutValidation(GrpcProtocol.TimeoutHeader, GrpcTimeout.Format(t));
        }

        if (_options.Headers is { } metadata)
        {
            MetadataHeaders.AddTo(http.Headers, metadata);
        }

        _activity = RpcTelemetry.StartClient(_method, http);
        if (_options.CancellationToken.CanBeCanceled)
        {
            _userCancellation = _options.CancellationToken.UnsafeRegister(
                static state => ((ClientCall<TRequest, TResponse>)state!).Cancel(new Status(StatusCode.Cancelled, "Call canceled by the client.")), this);
        }

        if (timeout is { } after)
        {
            _deadlineTimer = channelOptions.TimeProvider.CreateTimer(
                static state => ((ClientCall<TRequest, TResponse>)state!).Cancel(new Status(StatusCode.DeadlineExceeded, "Deadline exceeded.")), this, after, Timeout.InfiniteTimeSpan);
        }

        _response = SendAsync(http);
    }

    public async Task<bool> MoveNext(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _reading, 1) == 1)
        {
            throw new InvalidOperationException("Only one read can be pending on a response stream at a time.");
        }

        try
        {
            var response = await _response.ConfigureAwait(false);
            if (response is null || _reader is null || IsFinished)
            {
                return EndOfStream();
            }

            try
            {
                TResponse? message;
                if (cancellationToken.CanBeCanceled)
                {
                    using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _cts.Token);
                    message = await MessageFrameReader.ReadMessageAsync(_reader, _method.ResponseDeserializer, _channel.Options.MaxReceiveMessageSize, linked.Token).ConfigureAwait(false);
                }
                else
                {
                    message = await MessageFrameReader.ReadMessageAsync(_reader, _method.ResponseDeserializer, _channel.Options.MaxReceiveMessageSize, _cts.Token).ConfigureAwait(false);
                }

                if (message is not null)
                {
                    _current = message;
                    return true;
                }

                var trailers = response.TrailingHeaders;
                Finish(ReadStatus(trailers) ?? new Status(StatusCode.Internal, "The response ended without a grpc-status trailer."), MetadataHeaders.FromResponse(trailers));
            }
            catch (Exception e)
            {
                Finish(StatusFrom(e), new Metadata());
            }

            // Only the reading side may complete the reader (returns its pooled buffers); it is done with it now.
            await _reader.CompleteAsync().ConfigureAwait(false);
            return EndOfStream();
        }
        finally
        {
            Volatile.Write(ref _reading, 0);
        }
    }

    public async Task<TResponse> ReadSingleResponseAsync()
    {
        if (!await MoveNext().ConfigureAwait(false))
        {
            throw new RpcException(new Status(StatusCode.Internal, $"'{_method.FullName}' ended with OK but returned no response message."), GetTrailers());
        }

        var message = Current;
        if (await MoveNext().ConfigureAwait(false))
        {
            var status = new Status(StatusCode.Internal, $"'{_method.FullName}' returned more than one response message.");
            Cancel(status);
            throw new RpcException(status);
        }

        return message;
    }

    public async Task WriteAsync(TRequest message, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (_requestStreamCompleted)
        {
            throw new InvalidOperationException("The request stream has already been completed.");
        }

        ThrowIfFinished();
        if (Interlocked.Exchange(ref _writing, 1) == 1)
        {
            throw new InvalidOperationException("Only one write can be pending on a request stream at a time.");
        }

        try
        {
            int size;
            Memory<byte>? frame;
            try
            {
                frame = _method.RequestFrameEncoder?.Invoke(message);
                if (frame is { } encoded)
                {
                    if (encoded.Length < GrpcProtocol.FrameHeaderSize)
                    {
                        throw new InvalidOperationException($"The request frame encoder of '{_method.FullName}' returned {encoded.Length} bytes; a frame has at least its {GrpcProtocol.FrameHeaderSize}-byte header.");
                    }

                    size = encoded.Length - GrpcProtocol.FrameHeaderSize;
                    MessageFrameWriter.CheckSize(size, _channel.Options.MaxSendMessageSize);
                }
                else
                {
                    size = MessageFrameWriter.MeasureMessage(message, _channel.Options.MaxSendMessageSize);
                }
            }
            catch (RpcException e)
            {
                Cancel(e.Status);
                throw;
            }

            using var linked = cancellationToken.CanBeCanceled ? CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _cts.Token) : null;
            var token = linked?.Token ?? _cts.Token;
            try
            {
                var stream = await _requestStream.Task.WaitAsync(token).ConfigureAwait(false);
                if (frame is { } ready)
                {
                    await MessageFrameWriter.WriteFrameAsync(stream, ready, token).ConfigureAwait(false);
                }
                else
                {
                    await MessageFrameWriter.WriteMessageAsync(stream, message, size, token).ConfigureAwait(false);
                }

                // SocketsHttpHandler keeps DATA frames in the connection buffer until flushed: without this a small
                // message (an ack, a probe) can wait indefinitely and a ping-pong stalls.
                await stream.FlushAsync(token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not RpcException)
            {
                ThrowIfFinished();
                var status = StatusFrom(e);
                if (e is not OperationCanceledException && status.StatusCode == StatusCode.Unavailable)
                {
                    status = new Status(StatusCode.Unavailable, $"Error writing the request stream (read the response stream for the call's status). {e.GetType().Name}: {e.Message}");
                }

                throw new RpcException(status);
            }
        }
        finally
        {
            Volatile.Write(ref _writing, 0);
        }
    }

    public Task CompleteAsync()
    {
        _requestStreamCompleted = true;
        _requestCompleted.TrySetResult();
        return Task.CompletedTask;
    }

    public Status GetStatus()
    {
        lock (_gate)
        {
            return _status ?? throw new InvalidOperationException("The call has not ended yet; its status is not known.");
        }
    }

    public Metadata GetTrailers()
    {
        lock (_gate)
        {
            return _trailers ?? throw new InvalidOperationException("The call has not ended yet; its trailers are not known.");
        }
    }

    public void Dispose()
    {
        Cancel(new Status(StatusCode.Cancelled, "Call disposed by the client."));
        HttpResponseMessage? response;
        lock (_gate)
        {
            response = _httpResponse;
        }

        // Outside the lock: disposing aborts the stream, whose callbacks must not wait on this call's gate.
        response?.Dispose();
    }

    private bool IsFinished
    {
        get
        {
            lock (_gate)
            {
                return _status is not null;
            }
        }
    }

    private async Task<HttpResponseMessage?> SendAsync(HttpRequestMessage request)
    {
        HttpResponseMessage response;
        try
        {
            response = await _channel.Invoker.SendAsync(request, _cts.Token).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            Finish(StatusFrom(e), new Metadata());
            return null;
        }

        lock (_gate)
        {
            if (_status is not null)
            {
                response.Dispose();
                return null;
            }

            _httpResponse = response;
        }

        try
        {
            if (response.StatusCode != HttpStatusCode.OK)
            {
                var detail = response.Headers.TryGetValues(GrpcProtocol.MessageHeader, out var messages) ? " " + PercentEncoding.Decode(messages.First()) : string.Empty;
                Finish(new Status(FromHttpStatus(response.StatusCode), $"Bad gRPC response. HTTP status code: {(int)response.StatusCode}.{detail}"), MetadataHeaders.FromResponse(response.Headers));
                return null;
            }

            if (ReadStatus(response.Headers) is { } trailersOnly)
            {
                var metadata = MetadataHeaders.FromResponse(response.Headers);
                _headers.TrySetResult(metadata);
                Finish(trailersOnly, metadata);
                return null;
            }

            var contentType = response.Content.Headers.ContentType?.ToString();
            if (!GrpcProtocol.IsGrpcContentType(contentType))
            {
                Finish(new Status(StatusCode.Internal, $"Bad gRPC response. Invalid content-type value: '{contentType}'."), new Metadata());
                return null;
            }

            _headers.TrySetResult(MetadataHeaders.FromResponse(response.Headers));
            var stream = await response.Content.ReadAsStreamAsync(_cts.Token).ConfigureAwait(false);
            _reader = PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: _channel.Options.ResponseReadBufferSize, minimumReadSize: 4096));
            return response;
        }
        catch (Exception e)
        {
            Finish(StatusFrom(e), new Metadata());
            return null;
        }
    }

    private bool EndOfStream()
    {
        Status status;
        Metadata trailers;
        lock (_gate)
        {
            status = _status ?? new Status(StatusCode.Internal, "The call ended without a status.");
            trailers = _trailers ?? new Metadata();
        }

        if (status.StatusCode == StatusCode.OK)
        {
            return false;
        }

        throw new RpcException(status, trailers);
    }

    private void ThrowIfFinished()
    {
        Status? status;
        Metadata? trailers;
        lock (_gate)
        {
            status = _status;
            trailers = _trailers;
        }

        if (status is { } s)
        {
            if (s.StatusCode != StatusCode.OK)
            {
                throw new RpcException(s, trailers);
            }

            throw new InvalidOperationException("The call has already ended; no more requests can be written.");
        }
    }

    /// <summary>Ends the call early (client cancel, deadline, dispose, a local error): the stream is reset, the status recorded.</summary>
    private void Cancel(Status status)
    {
        lock (_gate)
        {
            if (_status is not null)
            {
                return;
            }

            _cancelStatus ??= status;
        }

        Finish(status, new Metadata());
    }

    private void Finish(Status status, Metadata trailers)
    {
        HttpResponseMessage? response;
        lock (_gate)
        {
            if (_status is not null)
            {
                return;
            }

            _status = status;
            _trailers = trailers;
            response = _httpResponse;
        }

        _userCancellation.Dispose();
        _deadlineTimer?.Dispose();
        RpcTelemetry.Stop(_activity, status);
        if (status.StatusCode == StatusCode.OK)
        {
            _headers.TrySetResult(new Metadata());
            _requestStream.TrySetException(new InvalidOperationException("The call has already ended; no more requests can be written."));
            _requestCompleted.TrySetResult();
            response?.Dispose();
            return;
        }

        var error = new RpcException(status, trailers);
        _headers.TrySetException(error);
        _requestStream.TrySetException(error);
        _requestCompleted.TrySetException(error);
        _ = _headers.Task.Exception;
        _ = _requestStream.Task.Exception;
        _ = _requestCompleted.Task.Exception;

        // Cancelling the request token and disposing the response resets the HTTP/2 stream (RST_STREAM CANCEL).
        try
        {
            _cts.Cancel();
        }
        catch (AggregateException)
        {
            // A callback failing must not hide the call's status.
        }

        response?.Dispose();
    }

    private Status StatusFrom(Exception error)
    {
        lock (_gate)
        {
            if (_cancelStatus is { } cancelled)
            {
                return cancelled;
            }
        }

        for (var e = error; e is not null; e = e.InnerException)
        {
            switch (e)
            {
                case RpcException rpc:
                    return rpc.Status;
                case HttpProtocolException protocol:
                    return FromHttp2Error(protocol.ErrorCode, protocol.Message);
            }
        }

        return error switch
        {
            OperationCanceledException => new Status(StatusCode.Cancelled, "Call canceled."),
            HttpRequestException http => new Status(StatusCode.Unavailable, $"Error starting gRPC call. {http.GetType().Name}: {http.Message}{Inner(http)}"),
            IOException io => new Status(StatusCode.Unavailable, $"Error reading the response. {io.GetType().Name}: {io.Message}{Inner(io)}"),
            _ => new Status(StatusCode.Internal, $"Error in gRPC call. {error.GetType().Name}: {error.Message}"),
        };
    }

    private static string Inner(Exception e) => e.InnerException is { } inner ? $" ({inner.GetType().Name}: {inner.Message})" : string.Empty;

    private static Status? ReadStatus(HttpHeaders headers)
    {
        if (!headers.NonValidated.TryGetValues(GrpcProtocol.StatusHeader, out var values))
        {
            return null;
        }

        var text = values.ToString();
        var message = headers.NonValidated.TryGetValues(GrpcProtocol.MessageHeader, out var messages) ? PercentEncoding.Decode(messages.ToString()) : string.Empty;
        if (!int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var code) || code < 0)
        {
            return new Status(StatusCode.Unknown, $"Unparsable grpc-status '{text}'. {message}");
        }

        return new Status((StatusCode)code, message);
    }

    private static StatusCode FromHttpStatus(HttpStatusCode status) => (int)status switch
    {
        400 => StatusCode.Internal,
        401 => StatusCode.Unauthenticated,
        403 => StatusCode.PermissionDenied,
        404 => StatusCode.Unimplemented,
        429 or 502 or 503 or 504 => StatusCode.Unavailable,
        _ => StatusCode.Unknown,
    };

    private static Status FromHttp2Error(long code, string message) => code switch
    {
        0x7 => new Status(StatusCode.Unavailable, $"The server refused the stream (REFUSED_STREAM). {message}"),
        0x8 => new Status(StatusCode.Cancelled, $"The server reset the stream (CANCEL). {message}"),
        0xb => new Status(StatusCode.ResourceExhausted, $"The server reset the stream (ENHANCE_YOUR_CALM). {message}"),
        0xc => new Status(StatusCode.PermissionDenied, $"The server reset the stream (INADEQUATE_SECURITY). {message}"),
        _ => new Status(StatusCode.Internal, $"The server reset the stream (HTTP/2 error 0x{code:x}). {message}"),
    };

    internal void AttachRequestStream(Stream stream) => _requestStream.TrySetResult(stream);

    internal Task RequestCompleted => _requestCompleted.Task;

    /// <summary>The request body: one message for unary and server-streaming calls, else the writes of the request stream until it completes.</summary>
    private sealed class RequestContent : HttpContent
    {
        private readonly ClientCall<TRequest, TResponse> _call;
        private readonly TRequest? _single;
        private readonly int _size;
        private int _used;

        public RequestContent(ClientCall<TRequest, TResponse> call, TRequest? single, int size)
        {
            _call = call;
            _single = single;
            _size = size;
            Headers.TryAddWithoutValidation("content-type", GrpcProtocol.ContentType);
        }

        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) => SerializeToStreamAsync(stream, context, CancellationToken.None);

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
        {
            if (_single is not null)
            {
                await MessageFrameWriter.WriteMessageAsync(stream, _single, _size, cancellationToken).ConfigureAwait(false);
                return;
            }

            if (Interlocked.Exchange(ref _used, 1) == 1)
            {
                throw new InvalidOperationException("A streaming request body cannot be sent twice.");
            }

            // SocketsHttpHandler holds the HEADERS frame until body bytes are flushed; a streaming call must
            // reach the server before its first write (the server may answer first, or the client may only read).
            await stream.FlushAsync(cancellationToken).ConfigureAwait(false);
            _call.AttachRequestStream(stream);
            await _call.RequestCompleted.WaitAsync(cancellationToken).ConfigureAwait(false);
        }

        protected override bool TryComputeLength(out long length)
        {
            length = -1;
            return false;
        }
    }
}
