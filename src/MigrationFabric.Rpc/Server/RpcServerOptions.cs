using System.Net;
using System.Security.Cryptography.X509Certificates;
using MigrationFabric.Rpc.Framing;

namespace MigrationFabric.Rpc.Server;

/// <summary>How an <see cref="RpcServer"/> listens and what it accepts; validated when the server starts.</summary>
public sealed class RpcServerOptions
{
    /// <summary>Address to listen on. Loopback by default: without <see cref="Tls"/> the traffic is plain-text h2c.</summary>
    public IPAddress ListenAddress { get; set; } = IPAddress.Loopback;

    /// <summary>TCP port; 0 (the default) picks a free one, read it back from <see cref="RpcServer.Port"/>.</summary>
    public int Port { get; set; }

    /// <summary>TLS (HTTP/2 over TLS with ALPN, optionally requiring client certificates); null (the default) serves h2c.</summary>
    public RpcServerTlsOptions? Tls { get; set; }

    /// <summary>Largest request message accepted, in bytes; larger ones fail the call with RESOURCE_EXHAUSTED. Default 4 MiB, as gRPC. Null means no limit.</summary>
    public int? MaxReceiveMessageSize { get; set; } = GrpcProtocol.DefaultMaxReceiveMessageSize;

    /// <summary>Largest response message sent, in bytes; larger ones fail the call with RESOURCE_EXHAUSTED. Default null: no limit, as gRPC.</summary>
    public int? MaxSendMessageSize { get; set; }

    /// <summary>HTTP/2 connection flow-control window advertised to clients, in bytes. Default 16 MiB so one stream can keep a fast link busy.</summary>
    public int InitialConnectionWindowSize { get; set; } = 16 * 1024 * 1024;

    /// <summary>HTTP/2 per-stream flow-control window advertised to clients, in bytes. Default 16 MiB (bulk page streams).</summary>
    public int InitialStreamWindowSize { get; set; } = 16 * 1024 * 1024;

    /// <summary>Largest HTTP/2 frame payload the server accepts (SETTINGS_MAX_FRAME_SIZE). Default 16 MiB - 1, the protocol's maximum; peers that honour it send fewer, larger frames.</summary>
    public int MaxFrameSize { get; set; } = (1 << 24) - 1;

    /// <summary>Concurrent streams allowed per HTTP/2 connection. Default 1000.</summary>
    public int MaxConcurrentStreams { get; set; } = 1000;

    /// <summary>Response bytes Kestrel buffers per stream before a write waits. Default 4 MiB, so a 1 MiB message does not stall on every flush.</summary>
    public long MaxResponseBufferSize { get; set; } = 4 * 1024 * 1024;

    /// <summary>Interval of HTTP/2 keep-alive pings on idle connections; null (the default) sends none.</summary>
    public TimeSpan? KeepAlivePingDelay { get; set; }

    /// <summary>Serve grpc.health.v1.Health. Default true.</summary>
    public bool EnableHealth { get; set; } = true;

    /// <summary>Serve gRPC server reflection (v1 and v1alpha) over the registered services' descriptors. Default true.</summary>
    public bool EnableReflection { get; set; } = true;

    /// <summary>Send handler exception types and messages to clients in grpc-message. Default false: clients see only "Exception was thrown by handler."</summary>
    public bool EnableDetailedErrors { get; set; }

    /// <summary>Clock for server-side deadlines. Default the system clock.</summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid option.</summary>
    public void Validate()
    {
        if (ListenAddress is null)
        {
            throw new ArgumentException($"{nameof(RpcServerOptions)}.{nameof(ListenAddress)} must be set.");
        }

        if (Port is < 0 or > 65535)
        {
            throw new ArgumentException($"{nameof(RpcServerOptions)}.{nameof(Port)} must be 0-65535, was {Port}.");
        }

        if (MaxReceiveMessageSize is <= 0)
        {
            throw new ArgumentException($"{nameof(RpcServerOptions)}.{nameof(MaxReceiveMessageSize)} must be positive or null, was {MaxReceiveMessageSize}.");
        }

        if (MaxSendMessageSize is <= 0)
        {
            throw new ArgumentException($"{nameof(RpcServerOptions)}.{nameof(MaxSendMessageSize)} must be positive or null, was {MaxSendMessageSize}.");
        }

        if (InitialConnectionWindowSize < 65535)
        {
            throw new ArgumentException($"{nameof(RpcServerOptions)}.{nameof(InitialConnectionWindowSize)} must be at least 65535, was {InitialConnectionWindowSize}.");
        }

        if (InitialStreamWindowSize < 65535 || InitialStreamWindowSize > InitialConnectionWindowSize)
        {
            throw new ArgumentException($"{nameof(RpcServerOptions)}.{nameof(InitialStreamWindowSize)} must be 65535..{nameof(InitialConnectionWindowSize)} ({InitialConnectionWindowSize}), was {InitialStreamWindowSize}.");
        }

        if (MaxFrameSize is < 16384 or > (1 << 24) - 1)
        {
            throw new ArgumentException($"{nameof(RpcServerOptions)}.{nameof(MaxFrameSize)} must be 16384..16777215, was {MaxFrameSize}.");
        }

        if (MaxConcurrentStreams <= 0)
        {
            throw new ArgumentException($"{nameof(RpcServerOptions)}.{nameof(MaxConcurrentStreams)} must be positive, was {MaxConcurrentStreams}.");
        }

        if (MaxResponseBufferSize < 0)
        {
            throw new ArgumentException($"{nameof(RpcServerOptions)}.{nameof(MaxResponseBufferSize)} must not be negative, was {MaxResponseBufferSize}.");
        }

        if (TimeProvider is null)
        {
            throw new ArgumentException($"{nameof(RpcServerOptions)}.{nameof(TimeProvider)} must be set.");
        }

        Tls?.Validate();
    }
}

/// <summary>TLS for an <see cref="RpcServer"/>.</summary>
public sealed class RpcServerTlsOptions
{
    /// <summary>The server's certificate, with its private key. Required.</summary>
    public X509Certificate2? ServerCertificate { get; set; }

    /// <summary>Require clients to present a certificate; connections without one are refused during the handshake. Default true (mutual TLS).</summary>
    public bool RequireClientCertificate { get; set; } = true;

    /// <summary>
    /// Decides whether a client certificate is trusted; null (the default) accepts only certificates that chain to the system trust store.
    /// Typical use: compare against a cluster CA or a pinned thumbprint.
    /// </summary>
    public Func<X509Certificate2, X509Chain?, System.Net.Security.SslPolicyErrors, bool>? ClientCertificateValidation { get; set; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid option.</summary>
    public void Validate()
    {
        if (ServerCertificate is null)
        {
            throw new ArgumentException($"{nameof(RpcServerTlsOptions)}.{nameof(ServerCertificate)} must be set when TLS is enabled.");
        }

        if (!ServerCertificate.HasPrivateKey)
        {
            throw new ArgumentException($"{nameof(RpcServerTlsOptions)}.{nameof(ServerCertificate)} ({ServerCertificate.Subject}) has no private key.");
        }
    }
}
