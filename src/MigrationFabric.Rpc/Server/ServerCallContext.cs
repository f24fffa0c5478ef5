using System.IO.Pipelines;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using Google.Protobuf;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http;
using MigrationFabric.Rpc.Framing;

namespace MigrationFabric.Rpc.Server;

/// <summary>What a handler knows about its call: metadata, deadline, cancellation, peer; and how it sets response headers, trailers and status.</summary>
public sealed class ServerCallContext : IDisposable
{
    private readonly HttpContext _http;
    private readonly RpcServerOptions _options;
    private readonly CancellationTokenSource _callCts;
    private readonly CancellationToken _callToken;
    private readonly ITimer? _deadlineTimer;
    private int _deadlineExceeded;
    private bool _headersPrepared;
    private bool _bodyWritten;

    internal ServerCallContext(HttpContext http, IMethod method, RpcServerOptions options)
    {
        _http = http;
        _options = options;
        MethodInfo = method;
        RequestHeaders = MetadataHeaders.FromRequest(http.Request.Headers);
        _callCts = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted);
        _callToken = _callCts.Token; // Captured: handlers may hold the context after the call ended and the source was disposed.
        Deadline = DateTime.MaxValue;
        if (GrpcTimeout.TryParse(http.Request.Headers[GrpcProtocol.TimeoutHeader], out var timeout))
        {
            Deadline = options.TimeProvider.GetUtcNow().UtcDateTime + timeout;
            _deadlineTimer = options.TimeProvider.CreateTimer(static state => ((ServerCallContext)state!).OnDeadline(), this, timeout, Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>The method being called, "/package.Service/Method".</summary>
    public string Method => "/" + MethodInfo.FullName;

    /// <summary>The method being called.</summary>
    public IMethod MethodInfo { get; }

    /// <summary>The :authority the client addressed.</summary>
    public string Host => _http.Request.Host.Value ?? string.Empty;

    /// <summary>The client's address in gRPC's form, e.g. "ipv4:127.0.0.1:50123".</summary>
    public string Peer
    {
        get
        {
            var ip = _http.Connection.RemoteIpAddress;
            if (ip is null)
            {
                return "unknown";
            }

            return ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6
                ? $"ipv6:[{ip}]:{_http.Connection.RemotePort}"
                : $"ipv4:{ip}:{_http.Connection.RemotePort}";
        }
    }

    /// <summary>When the client's grpc-timeout runs out (UTC); <see cref="DateTime.MaxValue"/> when it sent none.</summary>
    public DateTime Deadline { get; }

    /// <summary>Custom metadata the client sent (protocol headers excluded; "-bin" values decoded).</summary>
    public Metadata RequestHeaders { get; }

    /// <summary>Custom metadata sent with the status at the end of the call.</summary>
    public Metadata ResponseTrailers { get; } = new();

    /// <summary>The status sent when the handler returns normally; OK unless set. A thrown <see cref="RpcException"/> overrides it.</summary>
    public Status Status { get; set; } = Status.Ok;

    /// <summary>Cancelled when the client cancels or resets the stream, the connection drops, or the deadline passes.</summary>
    public CancellationToken CancellationToken => _callToken;

    /// <summary>The certificate the client presented over TLS, if any.</summary>
    public X509Certificate2? ClientCertificate => _http.Connection.ClientCertificate;

    /// <summary>The underlying ASP.NET Core request, for what this context does not expose.</summary>
    public HttpContext HttpContext => _http;

    internal bool DeadlineExceeded => Volatile.Read(ref _deadlineExceeded) == 1;

    internal PipeReader RequestBody => _http.Request.BodyReader;

    internal RpcServerOptions Options => _options;

    /// <summary>Sends response headers now, with this metadata; otherwise headers go out with the first message.</summary>
    public async Task WriteResponseHeadersAsync(Metadata headers)
    {
        ArgumentNullException.ThrowIfNull(headers);
        if (_http.Response.HasStarted)
        {
            throw new InvalidOperationException("Response headers have already been sent for this call.");
        }

        PrepareHeaders();
        MetadataHeaders.AddTo(_http.Response.Headers, headers);
        await _http.Response.StartAsync(CancellationToken).ConfigureAwait(false);
        await _http.Response.BodyWriter.FlushAsync(CancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _deadlineTimer?.Dispose();
        _callCts.Dispose();
    }

    internal async ValueTask WriteMessageAsync(IMessage message, bool flush, CancellationToken cancellationToken)
    {
        var size = MessageFrameWriter.MeasureMessage(message, _options.MaxSendMessageSize);
        PrepareHeaders();
        var writer = _http.Response.BodyWriter;
        MessageFrameWriter.WriteMessage(writer, message, size);
        _bodyWritten = true;
        if (flush)
        {
            var result = await writer.FlushAsync(cancellationToken).ConfigureAwait(false);
            if (result.IsCanceled)
            {
                throw new OperationCanceledException("The response write was canceled.");
            }
        }
    }

    /// <summary>The status an exception from the handler (or from reading/writing) means.</summary>
    internal Status StatusFrom(Exception? error)
    {
        if (DeadlineExceeded)
        {
            return new Status(StatusCode.DeadlineExceeded, "Deadline exceeded.");
        }

        switch (error)
        {
            case null:
                return Status;
            case RpcException rpc:
                foreach (var entry in rpc.Trailers)
                {
                    ResponseTrailers.Add(entry);
                }

                return rpc.Status;
            case OperationCanceledException or IOException or ConnectionAbortedException when _http.RequestAborted.IsCancellationRequested:
                return new Status(StatusCode.Cancelled, "Call canceled by the client.");
            case OperationCanceledException:
                return new Status(StatusCode.Cancelled, "Call canceled by the server handler.");
            default:
                return new Status(StatusCode.Unknown, _options.EnableDetailedErrors
                    ? $"Exception was thrown by handler. {error.GetType().Name}: {error.Message}"
                    : "Exception was thrown by handler.");
        }
    }

    /// <summary>Ends the call with a status: in the trailers, or as a trailers-only response when nothing was sent yet.</summary>
    internal void Finish(Status status)
    {
        if (_http.RequestAborted.IsCancellationRequested)
        {
            return; // The stream is gone; nobody is left to tell.
        }

        var response = _http.Response;
        if (!response.HasStarted && !_bodyWritten)
        {
            PrepareHeaders();
            WriteStatus(response.Headers, status);
            MetadataHeaders.AddTo(response.Headers, ResponseTrailers);
            return;
        }

        var trailers = _http.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpResponseTrailersFeature>()?.Trailers
            ?? throw new InvalidOperationException("The transport does not support HTTP trailers; gRPC needs HTTP/2.");
        WriteStatus(trailers, status);
        MetadataHeaders.AddTo(trailers, ResponseTrailers);
    }

    internal static void WriteStatus(IHeaderDictionary headers, Status status)
    {
        headers[GrpcProtocol.StatusHeader] = ((int)status.StatusCode).ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (!string.IsNullOrEmpty(status.Detail))
        {
            headers[GrpcProtocol.MessageHeader] = PercentEncoding.Encode(status.Detail);
        }
    }

    private void PrepareHeaders()
    {
        if (_headersPrepared)
        {
            return;
        }

        _headersPrepared = true;
        _http.Response.StatusCode = StatusCodes.Status200OK;
        _http.Response.ContentType = GrpcProtocol.ContentType;
    }

    private void OnDeadline()
    {
        Volatile.Write(ref _deadlineExceeded, 1);
        try
        {
            _callCts.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // The call ended while the timer fired.
        }
    }
}
