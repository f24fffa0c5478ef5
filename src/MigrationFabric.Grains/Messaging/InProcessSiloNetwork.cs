using System.Collections.Concurrent;
using MigrationFabric.Grains.Membership;

namespace MigrationFabric.Grains.Messaging;

/// <summary>Silos of one process talking through memory (bytes are still encoded and decoded); for tests and embedded clusters.</summary>
public sealed class InProcessSiloNetwork
{
    private readonly ConcurrentDictionary<int, ISiloMessageHandler> _handlers = new();
    private int _nextPort = 20000;

    /// <summary>A transport attached to this network.</summary>
    public ISiloTransport CreateTransport() => new Transport(this);

    /// <summary>Makes the silo on <paramref name="port"/> unreachable, as if its process was killed.</summary>
    public void Kill(int port) => _handlers.TryRemove(port, out _);

    private sealed class Transport(InProcessSiloNetwork network) : ISiloTransport
    {
        private int _port;

        public Task<int> StartAsync(ISiloMessageHandler handler, CancellationToken cancellationToken)
        {
            _port = Interlocked.Increment(ref network._nextPort);
            network._handlers[_port] = handler;
            return Task.FromResult(_port);
        }

        public async Task<ReadOnlyMemory<byte>> SendAsync(SiloAddress target, ReadOnlyMemory<byte> request, CancellationToken cancellationToken)
        {
            if (!network._handlers.TryGetValue(target.Port, out var handler))
                throw new SiloUnavailableException(target, "no silo listens on that in-process port");
            await Task.Yield();
            var response = await handler.HandleAsync(request.ToArray(), cancellationToken).ConfigureAwait(false);
            return response.ToArray();
        }

        public void Disconnect(SiloAddress silo) { }

        public ValueTask DisposeAsync()
        {
            network._handlers.TryRemove(_port, out _);
            return ValueTask.CompletedTask;
        }
    }
}
