using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using MigrationFabric.Rpc.Client;
using MigrationFabric.Rpc.Server;
using MigrationFabric.Tests.Echo.V1;

namespace MigrationFabric.Rpc.Bench;

/// <summary>Sequential unary round trips (Echo.Say, small message) on loopback, next to a raw TCP 64-byte ping-pong.</summary>
internal static class LatencyBench
{
    public static async Task RunAsync(BenchArgs args, CancellationToken ct)
    {
        var descriptor = EchoReflection.Descriptor.Services[0];
        var say = Method<EchoRequest, EchoReply>.Create(descriptor, "Say");
        await using var server = new RpcServer(new RpcServerOptions());
        server.AddService(RpcServiceDefinition.CreateBuilder(descriptor)
            .AddUnary<EchoRequest, EchoReply>("Say", (request, _) => Task.FromResult(new EchoReply { Message = request.Message, Payload = request.Payload }))
            .Build());
        await server.StartAsync(ct);
        using var channel = new RpcChannel(server.Address);
        var request = new EchoRequest { Message = "ping", Payload = Google.Protobuf.ByteString.CopyFrom(new byte[32]) };

        for (var i = 0; i < args.Warmup; i++)
        {
            await channel.AsyncUnaryCall(say, request, new CallOptions(CancellationToken: ct));
        }

        var samples = new double[args.Calls];
        for (var i = 0; i < args.Calls; i++)
        {
            var t = Stopwatch.GetTimestamp();
            await channel.AsyncUnaryCall(say, request, new CallOptions(CancellationToken: ct));
            samples[i] = Stopwatch.GetElapsedTime(t).TotalMicroseconds;
        }

        var raw = await RawPingPongAsync(args.Warmup, args.Calls, ct);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"latency: unary Echo.Say x{args.Calls} (after {args.Warmup} warm-up) p50 {Stats.Percentile(samples, 0.5):F0} us, p99 {Stats.Percentile(samples, 0.99):F0} us, mean {samples.Average():F0} us | raw TCP 64-byte ping-pong p50 {Stats.Percentile(raw, 0.5):F0} us, p99 {Stats.Percentile(raw, 0.99):F0} us"));
    }

    private static async Task<double[]> RawPingPongAsync(int warmup, int calls, CancellationToken ct)
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        var accept = listener.AcceptAsync(ct);
        await client.ConnectAsync(listener.LocalEndPoint!, ct);
        using var peer = await accept;
        peer.NoDelay = true;
        var echo = Task.Run(async () =>
        {
            var buffer = new byte[64];
            while (true)
            {
                var n = await ReadExactlyAsync(peer, buffer, ct);
                if (n == 0)
                {
                    return;
                }

                await peer.SendAsync(buffer, SocketFlags.None, ct);
            }
        }, ct);
        var message = new byte[64];
        var reply = new byte[64];
        var samples = new double[calls];
        for (var i = 0; i < warmup + calls; i++)
        {
            var t = Stopwatch.GetTimestamp();
            await client.SendAsync(message, SocketFlags.None, ct);
            await ReadExactlyAsync(client, reply, ct);
            if (i >= warmup)
            {
                samples[i - warmup] = Stopwatch.GetElapsedTime(t).TotalMicroseconds;
            }
        }

        client.Shutdown(SocketShutdown.Send);
        await echo;
        return samples;
    }

    private static async Task<int> ReadExactlyAsync(Socket socket, byte[] buffer, CancellationToken ct)
    {
        var read = 0;
        while (read < buffer.Length)
        {
            var n = await socket.ReceiveAsync(buffer.AsMemory(read), SocketFlags.None, ct);
            if (n == 0)
            {
                return read;
            }

            read += n;
        }

        return read;
    }
}
