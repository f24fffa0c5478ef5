using System.Net;
using Google.Protobuf;

namespace MigrationFabric.Rpc.Client;

/// <summary>A client connection to one gRPC server (h2c for http://, TLS for https://): one HTTP/2 handler shared by every call.</summary>
public sealed class RpcChannel : IDisposable
{
    private readonly HttpMessageInvoker _invoker;

    /// <summary>Creates a channel to <paramref name="address"/> (scheme http or https, host, port).</summary>
    public RpcChannel(Uri address, RpcChannelOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.Scheme != Uri.UriSchemeHttp && address.Scheme != Uri.UriSchemeHttps)
        {
            throw new ArgumentException($"Channel address '{address}' must use http (h2c) or https.", nameof(address));
        }

        Options = options ?? new RpcChannelOptions();
        Options.Validate();
        Address = new Uri(address.GetLeftPart(UriPartial.Authority));
        var handler = Options.HttpHandler ?? CreateHandler(Options);
        _invoker = new HttpMessageInvoker(handler, disposeHandler: Options.HttpHandler is null || Options.DisposeHttpHandler);
    }

    /// <summary>Creates a channel to an address such as "http://127.0.0.1:50051".</summary>
    public static RpcChannel ForAddress(string address, RpcChannelOptions? options = null) => new(new Uri(address), options);

    /// <summary>The server's base address.</summary>
    public Uri Address { get; }

    /// <summary>The options the channel runs with.</summary>
    public RpcChannelOptions Options { get; }

    internal HttpMessageInvoker Invoker => _invoker;

    /// <summary>Starts a unary call; await the result for the response.</summary>
    public AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, TRequest request, CallOptions options = default)
        where TRequest : class, IMessage<TRequest>, new()
        where TResponse : class, IMessage<TResponse>, new()
    {
        ArgumentNullException.ThrowIfNull(request);
        var call = Start(method, MethodType.Unary, options, request);
        return new AsyncUnaryCall<TResponse>(call, call.ReadSingleResponseAsync());
    }

    /// <summary>Starts a server-streaming call; read the responses from its ResponseStream.</summary>
    public AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, TRequest request, CallOptions options = default)
        where TRequest : class, IMessage<TRequest>, new()
        where TResponse : class, IMessage<TResponse>, new()
    {
        ArgumentNullException.ThrowIfNull(request);
        var call = Start(method, MethodType.ServerStreaming, options, request);
        return new AsyncServerStreamingCall<TResponse>(call, call);
    }

    /// <summary>Starts a client-streaming call; write requests, complete the RequestStream, then await the response.</summary>
    public AsyncClientStreamingCall<TRequest, TResponse> AsyncClientStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, CallOptions options = default)
        where TRequest : class, IMessage<TRequest>, new()
        where TResponse : class, IMessage<TResponse>, new()
    {
        var call = Start(method, MethodType.ClientStreaming, options, null);
        return new AsyncClientStreamingCall<TRequest, TResponse>(call, call, call.ReadSingleResponseAsync());
    }

    /// <summary>Starts a duplex call; write and read independently.</summary>
    public AsyncDuplexStreamingCall<TRequest, TResponse> AsyncDuplexStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, CallOptions options = default)
        where TRequest : class, IMessage<TRequest>, new()
        where TResponse : class, IMessage<TResponse>, new()
    {
        var call = Start(method, MethodType.DuplexStreaming, options, null);
        return new AsyncDuplexStreamingCall<TRequest, TResponse>(call, call, call);
    }

    /// <summary>Closes the connections; calls still running fail.</summary>
    public void Dispose() => _invoker.Dispose();

    private ClientCall<TRequest, TResponse> Start<TRequest, TResponse>(Method<TRequest, TResponse> method, MethodType kind, CallOptions options, TRequest? request)
        where TRequest : class, IMessage<TRequest>, new()
        where TResponse : class, IMessage<TResponse>, new()
    {
        ArgumentNullException.ThrowIfNull(method);
        if (method.Type != kind)
        {
            throw new ArgumentException($"Method '{method.FullName}' is {method.Type}; it cannot be called as {kind}.", nameof(method));
        }

        var call = new ClientCall<TRequest, TResponse>(this, method, options);
        call.Start(request);
        return call;
    }

    private static SocketsHttpHandler CreateHandler(RpcChannelOptions options)
    {
        var handler = new SocketsHttpHandler
        {
            EnableMultipleHttp2Connections = options.EnableMultipleHttp2Connections,
            InitialHttp2StreamWindowSize = options.InitialStreamWindowSize,
            ConnectTimeout = options.ConnectTimeout,
            PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
            AutomaticDecompression = DecompressionMethods.None,
            AllowAutoRedirect = false,
            UseCookies = false,
            UseProxy = false,
        };
        if (options.KeepAlivePingDelay is { } ping)
        {
            handler.KeepAlivePingDelay = ping;
            handler.KeepAlivePingPolicy = HttpKeepAlivePingPolicy.WithActiveRequests;
        }

        if (options.ClientCertificates is { Count: > 0 } certificates)
        {
            handler.SslOptions.ClientCertificates = certificates;
        }

        if (options.ServerCertificateValidation is { } validation)
        {
            handler.SslOptions.RemoteCertificateValidationCallback = validation;
        }

        return handler;
    }
}
