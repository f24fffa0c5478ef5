using MigrationFabric.Grains.Membership;
using MigrationFabric.Grains.Messaging;
using Xunit;

namespace MigrationFabric.Grains.Tests.Runtime;

public sealed class RpcSiloTransportTests
{
    /// <summary>Echoes; a request "wait" completes only after a request "go" arrived.</summary>
    private sealed class GateHandler : ISiloMessageHandler
    {
        private readonly TaskCompletionSource _go = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public async Task<ReadOnlyMemory<byte>> HandleAsync(ReadOnlyMemory<byte> request, CancellationToken cancellationToken)
        {
            var text = System.Text.Encoding.UTF8.GetString(request.Span);
            if (text == "wait") await _go.Task.WaitAsync(cancellationToken);
            if (text == "go") _go.TrySetResult();
            return request.ToArray();
        }
    }

    [Fact]
    public async Task Calls_on_one_stream_are_multiplexed_so_a_waiting_call_does_not_hold_up_the_next()
    {
        await using var server = new RpcSiloTransport();
        int port = await server.StartAsync(new GateHandler(), CancellationToken.None);
        await using var client = new RpcSiloTransport();
        var target = SiloAddress.NewGeneration("127.0.0.1", port);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        // The first frame of a fresh stream waits for the second: both must reach the server (flushed), then complete.
        var waiting = client.SendAsync(target, "wait"u8.ToArray(), cts.Token);
        var go = await client.SendAsync(target, "go"u8.ToArray(), cts.Token);
        Assert.Equal("go"u8.ToArray(), go.ToArray());
        Assert.Equal("wait"u8.ToArray(), (await waiting).ToArray());

        var many = await Task.WhenAll(Enumerable.Range(0, 200).Select(i => client.SendAsync(target, BitConverter.GetBytes(i), cts.Token)));
        for (int i = 0; i < many.Length; i++) Assert.Equal(i, BitConverter.ToInt32(many[i].Span)); // responses matched by call id
    }

    [Fact]
    public async Task A_peer_that_is_not_listening_fails_fast_with_SiloUnavailable()
    {
        await using var client = new RpcSiloTransport();
        var nobody = SiloAddress.NewGeneration("127.0.0.1", 1); // port 1: refused
        var started = DateTime.UtcNow;
        var e = await Assert.ThrowsAsync<SiloUnavailableException>(() => client.SendAsync(nobody, new byte[] { 7 }, CancellationToken.None));
        Assert.Equal(nobody, e.Silo);
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task A_server_that_stops_fails_the_calls_in_flight_and_the_next_ones()
    {
        var server = new RpcSiloTransport();
        int port = await server.StartAsync(new GateHandler(), CancellationToken.None);
        await using var client = new RpcSiloTransport();
        var target = SiloAddress.NewGeneration("127.0.0.1", port);
        var pending = client.SendAsync(target, "wait"u8.ToArray(), CancellationToken.None);
        await Task.Delay(100);
        await server.DisposeAsync();
        await Assert.ThrowsAsync<SiloUnavailableException>(() => pending);
        await Assert.ThrowsAsync<SiloUnavailableException>(() => client.SendAsync(target, "x"u8.ToArray(), CancellationToken.None));
    }
}
