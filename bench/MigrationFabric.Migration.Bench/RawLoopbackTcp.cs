using System.Net;
using System.Net.Sockets;

/// <summary>The yardstick every data-plane figure is divided by: bytes moved over one loopback socket pair in 1 MiB writes.</summary>
internal static class RawLoopbackTcp
{
    /// <summary>Moves <paramref name="bytes"/>; <paramref name="connected"/> runs once both ends are up, just before the first write, so callers time only the transfer.</summary>
    public static async Task MoveAsync(long bytes, Action connected)
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(listener.LocalEndPoint!);
        using var server = await listener.AcceptAsync();
        var send = new byte[1 << 20];
        var receive = new byte[1 << 20];
        new Random(2).NextBytes(send);
        connected();
        var reader = Task.Run(async () =>
        {
            long got = 0;
            while (got < bytes)
            {
                int n = await server.ReceiveAsync(receive, SocketFlags.None);
                if (n == 0) break;
                got += n;
            }
        });
        for (long sent = 0; sent < bytes; sent += send.Length) await client.SendAsync(send, SocketFlags.None);
        await reader;
    }
}
