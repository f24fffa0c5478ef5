using System.Net;

namespace MigrationFabric.Migration.DataPlane.Tcp;

/// <summary>How an agent's data-channel listener listens; validated when it starts.</summary>
public sealed class DataChannelListenerOptions
{
    /// <summary>Address to listen on; a host agent binds the same address as its gRPC endpoint. Default loopback.</summary>
    public IPAddress Address { get; set; } = IPAddress.Loopback;

    /// <summary>TCP port; 0 (the default) picks a free one (OpenDataChannel tells the source which).</summary>
    public int Port { get; set; }

    /// <summary>How long a token from OpenDataChannel stays valid unused. Default 30 s.</summary>
    public TimeSpan TokenLifetime { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Time a new connection has to present its token before it is closed. Default 10 s.</summary>
    public TimeSpan HandshakeTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Largest frame accepted from a source, in bytes (a 1024-page batch is ~4.1 MiB); a longer one is a garbled frame. Default 64 MiB, as a host agent's MaxReceiveMessageSize.</summary>
    public int MaxMessageSize { get; set; } = 64 << 20;

    /// <summary>Socket send and receive buffer sizes, in bytes. Default 4 MiB (a few 1 MiB batches in flight per stream).</summary>
    public int SocketBufferSize { get; set; } = 4 << 20;

    /// <summary>The clock for token expiry. Default the system clock.</summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid option.</summary>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Address, "DataChannelListenerOptions.Address");
        if (Port is < 0 or > 65535) throw new ArgumentException($"DataChannelListenerOptions.Port must be within 0..65535, was {Port}.");
        if (TokenLifetime <= TimeSpan.Zero) throw new ArgumentException($"DataChannelListenerOptions.TokenLifetime must be positive, was {TokenLifetime}.");
        if (HandshakeTimeout <= TimeSpan.Zero) throw new ArgumentException($"DataChannelListenerOptions.HandshakeTimeout must be positive, was {HandshakeTimeout}.");
        if (MaxMessageSize < 1 << 20) throw new ArgumentException($"DataChannelListenerOptions.MaxMessageSize must be at least 1 MiB, was {MaxMessageSize}.");
        if (SocketBufferSize < 64 << 10) throw new ArgumentException($"DataChannelListenerOptions.SocketBufferSize must be at least 64 KiB, was {SocketBufferSize}.");
        ArgumentNullException.ThrowIfNull(TimeProvider, "DataChannelListenerOptions.TimeProvider");
    }
}
