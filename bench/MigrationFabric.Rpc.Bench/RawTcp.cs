using System.Net;
using System.Net.Sockets;

namespace MigrationFabric.Rpc.Bench;

/// <summary>The reference: plain loopback TCP socket pairs moving a byte count one way, no framing.</summary>
internal static class RawTcp
{
    /// <summary>Moves <paramref name="totalBytes"/> split evenly over <paramref name="connections"/> socket pairs, in <paramref name="chunkBytes"/> writes; returns the elapsed seconds.</summary>
    public static async Task<double> MoveAsync(long totalBytes, int chunkBytes, int connections, CancellationToken cancellationToken)
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(connections);
        var pairs = new (Socket Sender, Socket Receiver)[connections];
        for (var i = 0; i < connections; i++)
        {
            var sender = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            var accept = listener.AcceptAsync(cancellationToken);
            await sender.ConnectAsync(listener.LocalEndPoint!, cancellationToken);
            var receiver = await accept;
            receiver.NoDelay = true;
            pairs[i] = (sender, receiver);
        }

        try
        {
            var perConnection = totalBytes / connections;
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            var tasks = new Task[connections * 2];
            for (var i = 0; i < connections; i++)
            {
                tasks[2 * i] = SendAsync(pairs[i].Sender, perConnection, chunkBytes, cancellationToken);
                tasks[(2 * i) + 1] = ReceiveAsync(pairs[i].Receiver, perConnection, chunkBytes, cancellationToken);
            }

            await Task.WhenAll(tasks);
            return System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds;
        }
        finally
        {
            foreach (var (s, r) in pairs)
            {
                s.Dispose();
                r.Dispose();
            }
        }
    }

    private static async Task SendAsync(Socket socket, long bytes, int chunkBytes, CancellationToken cancellationToken)
    {
        await Task.Yield();
        var buffer = new byte[chunkBytes];
        Random.Shared.NextBytes(buffer);
        var left = bytes;
        while (left > 0)
        {
            var n = (int)Math.Min(left, chunkBytes);
            var sent = 0;
            while (sent < n)
            {
                sent += await socket.SendAsync(buffer.AsMemory(sent, n - sent), SocketFlags.None, cancellationToken);
            }

            left -= n;
        }

        socket.Shutdown(SocketShutdown.Send);
    }

    private static async Task ReceiveAsync(Socket socket, long bytes, int chunkBytes, CancellationToken cancellationToken)
    {
        await Task.Yield();
        var buffer = new byte[chunkBytes];
        long received = 0;
        while (true)
        {
            var n = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken);
            if (n == 0)
            {
                break;
            }

            received += n;
        }

        if (received != bytes)
        {
            throw new InvalidOperationException($"raw TCP moved {received} bytes, expected {bytes}");
        }
    }
}
