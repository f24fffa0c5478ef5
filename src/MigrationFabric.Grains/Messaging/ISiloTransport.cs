using MigrationFabric.Grains.Membership;

namespace MigrationFabric.Grains.Messaging;

/// <summary>Carries silo messages: request bytes out, response bytes back, multiplexed per peer.</summary>
public interface ISiloTransport : IAsyncDisposable
{
    /// <summary>Starts accepting requests for <paramref name="handler"/>; returns the port actually bound.</summary>
    Task<int> StartAsync(ISiloMessageHandler handler, CancellationToken cancellationToken);

    /// <summary>Sends a request to <paramref name="target"/> and returns its response.</summary>
    /// <exception cref="SiloUnavailableException">The target cannot be reached (refused, reset, closed).</exception>
    Task<ReadOnlyMemory<byte>> SendAsync(SiloAddress target, ReadOnlyMemory<byte> request, CancellationToken cancellationToken);

    /// <summary>Drops any connection to <paramref name="silo"/> (it was declared dead) and fails its pending calls.</summary>
    void Disconnect(SiloAddress silo);
}

/// <summary>Answers the requests a transport receives.</summary>
public interface ISiloMessageHandler
{
    /// <summary>Handles one request; the response bytes are sent back to the caller.</summary>
    Task<ReadOnlyMemory<byte>> HandleAsync(ReadOnlyMemory<byte> request, CancellationToken cancellationToken);
}
