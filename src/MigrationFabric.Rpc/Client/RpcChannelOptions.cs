using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using MigrationFabric.Rpc.Framing;

namespace MigrationFabric.Rpc.Client;

/// <summary>How an <see cref="RpcChannel"/> connects and what it accepts; validated when the channel is created.</summary>
public sealed class RpcChannelOptions
{
    /// <summary>Largest response message accepted, in bytes; larger ones fail the call with RESOURCE_EXHAUSTED. Default 4 MiB, as gRPC. Null means no limit.</summary>
    public int? MaxReceiveMessageSize { get; set; } = GrpcProtocol.DefaultMaxReceiveMessageSize;

    /// <summary>Largest request message sent, in bytes; larger ones fail the call with RESOURCE_EXHAUSTED before anything is sent. Default null: no limit, as gRPC.</summary>
    public int? MaxSendMessageSize { get; set; }

    /// <summary>HTTP/2 per-stream receive window, in bytes. Default 16 MiB so one stream can keep a fast link busy.</summary>
    public int InitialStreamWindowSize { get; set; } = 16 * 1024 * 1024;

    /// <summary>Open another HTTP/2 connection when the server's concurrent-stream limit is reached. Default true.</summary>
    public bool EnableMultipleHttp2Connections { get; set; } = true;

    /// <summary>Time allowed to open a connection (TCP + TLS); beyond it the call fails with UNAVAILABLE. Default 10 s.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Interval of HTTP/2 keep-alive pings while calls are active; null (the default) sends none.</summary>
    public TimeSpan? KeepAlivePingDelay { get; set; }

    /// <summary>Bytes the response reader asks the transport for at a time. Default 64 KiB.</summary>
    public int ResponseReadBufferSize { get; set; } = 64 * 1024;

    /// <summary>Client certificates presented over TLS (https addresses). Default none.</summary>
    public X509CertificateCollection? ClientCertificates { get; set; }

    /// <summary>Decides whether the server's certificate is trusted; null (the default) uses the system trust store.</summary>
    public RemoteCertificateValidationCallback? ServerCertificateValidation { get; set; }

    /// <summary>A handler to send requests through instead of the channel's own SocketsHttpHandler (the options above that configure it are then ignored). Default null.</summary>
    public HttpMessageHandler? HttpHandler { get; set; }

    /// <summary>Dispose <see cref="HttpHandler"/> with the channel. Default true.</summary>
    public bool DisposeHttpHandler { get; set; } = true;

    /// <summary>Clock for client-side deadlines. Default the system clock.</summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid option.</summary>
    public void Validate()
    {
        if (MaxReceiveMessageSize is <= 0)
        {
            throw new ArgumentException($"{nameof(RpcChannelOptions)}.{nameof(MaxReceiveMessageSize)} must be positive or null, was {MaxReceiveMessageSize}.");
        }

        if (MaxSendMessageSize is <= 0)
        {
            throw new ArgumentException($"{nameof(RpcChannelOptions)}.{nameof(MaxSendMessageSize)} must be positive or null, was {MaxSendMessageSize}.");
        }

        if (InitialStreamWindowSize < 65535)
        {
            throw new ArgumentException($"{nameof(RpcChannelOptions)}.{nameof(InitialStreamWindowSize)} must be at least 65535, was {InitialStreamWindowSize}.");
        }

        if (ConnectTimeout <= TimeSpan.Zero && ConnectTimeout != Timeout.InfiniteTimeSpan)
        {
            throw new ArgumentException($"{nameof(RpcChannelOptions)}.{nameof(ConnectTimeout)} must be positive, was {ConnectTimeout}.");
        }

        if (ResponseReadBufferSize < 4096)
        {
            throw new ArgumentException($"{nameof(RpcChannelOptions)}.{nameof(ResponseReadBufferSize)} must be at least 4096, was {ResponseReadBufferSize}.");
        }

        if (TimeProvider is null)
        {
            throw new ArgumentException($"{nameof(RpcChannelOptions)}.{nameof(TimeProvider)} must be set.");
        }
    }
}
