using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Google.Protobuf;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Tracking;
using MigrationFabric.Migration.Codec;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.DataPlane.FaultChannel;
using MigrationFabric.Migration.Tests.Support;
using MigrationFabric.Rpc;

namespace MigrationFabric.Migration.Tests.DataPlane;

/// <summary>The post-copy fault channel's two ends over real loopback sockets, each facing a peer written here byte by byte.</summary>
public class FaultChannelTests
{
    private const long Mib = 1 << 20;
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(30);

    private static async Task<(Socket A, Socket B)> PairAsync()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var a = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        var accept = listener.AcceptAsync();
        await a.ConnectAsync(listener.LocalEndPoint!);
        return (a, await accept.WaitAsync(Long));
    }

    private static void WriteFrame(Socket socket, byte flag, ReadOnlySpan<byte> body)
    {
        var frame = new byte[5 + body.Length];
        frame[0] = flag;
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(1), (uint)body.Length);
        body.CopyTo(frame.AsSpan(5));
        socket.Send(frame);
    }

    private static byte[] ReadFrame(Socket socket)
    {
        var header = new byte[5];
        ReadExactly(socket, header);
        Assert.Equal(0, header[0]);
        var body = new byte[BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(1))];
        ReadExactly(socket, body);
        return body;
    }

    private static void ReadExactly(Socket socket, Span<byte> into)
    {
        while (!into.IsEmpty)
        {
            int n = socket.Receive(into);
            if (n == 0) throw new EndOfStreamException("peer closed");
            into = into[n..];
        }
    }

    private static RemotePagesRequest Ask(long page, uint prefetch = 0, string id = "m-1") =>
        new() { MigrationId = id, Vm = "vm-1", Prefetch = prefetch, PageNumbers = { (ulong)page } };

    // ---- the source's end: a dedicated thread answering the destination's requests ----

    private static (OutgoingMigration Outgoing, TestVm Vm) Source(long pages = 64)
    {
        var vm = new TestVm(pages * Page.Size);
        vm.Fill();
        var pending = new AtomicPageBitmap(vm.Memory.PageCount);
        pending.SetAll();
        return (new OutgoingMigration("m-1", "vm-1", vm.Memory, pending), vm);
    }

    /// <summary>A source end serving <see cref="Source"/>'s migration on one socket of a pair; the test talks on <see cref="Destination"/>.</summary>
    private sealed record Served(OutgoingMigration Outgoing, TestVm Vm, Socket Destination, FaultChannelServer Server) : IDisposable
    {
        public void Dispose()
        {
            Server.Dispose();
            Destination.Dispose();
            Vm.Dispose();
        }
    }

    private static async Task<Served> ServeAsync()
    {
        var (outgoing, vm) = Source();
        var (destination, source) = await PairAsync();
        var server = new FaultChannelServer(source);
        server.Start(outgoing);
        return new Served(outgoing, vm, destination, server);
    }

    [Fact]
    public async Task The_source_end_answers_each_request_with_the_page_and_its_prefetch_and_the_push_holds_off_until_the_reply_has_left()
    {
        var (outgoing, vm) = Source();
        using var _ = vm;
        var (destination, source) = await PairAsync();
        using var server = new FaultChannelServer(source);
        server.Start(outgoing);
        Assert.Same(server, outgoing.FaultChannel);

        WriteFrame(destination, 0, Ask(10, prefetch: 3).ToByteArray());
        var reply = RemotePagesResponse.Parser.ParseFrom(ReadFrame(destination));

        Assert.Equal(0u, reply.ErrorCode);
        Assert.Equal([10UL, 11, 12, 13], reply.Batch.PageNumbers);
        var reader = new PageBatchReader(reply.Batch, vm.Memory.PageCount);
        var bytes = new byte[Page.Size];
        Assert.True(reader.TryRead(out var first));
        first.DecodeInto(bytes);
        Assert.True(bytes.AsSpan().SequenceEqual(vm.Memory.GetPageBytes(10)));
        Assert.True(reply.ReceivedAtNs > 0 && reply.ReadAtNs >= reply.ReceivedAtNs);
        Assert.False(outgoing.Pending.IsSet(12));
        Assert.Equal(1, outgoing.Requests);
        // The reply's completion was reported (urgent back to 0), so the push is not held.
        await outgoing.WaitForNoUrgentAsync(Long, CancellationToken.None).AsTask().WaitAsync(Long);
        Assert.False(outgoing.HasUrgent);
        destination.Dispose();
        await server.Completion.WaitAsync(Long);
        Assert.Null(server.Error);
    }

    [Fact]
    public async Task A_request_for_a_page_outside_the_VM_or_of_another_migration_gets_an_error_reply_and_the_channel_stays_open()
    {
        using var served = await ServeAsync();
        var (outgoing, vm, destination, server) = served;

        WriteFrame(destination, 0, Ask(64).ToByteArray());
        var outside = RemotePagesResponse.Parser.ParseFrom(ReadFrame(destination));
        WriteFrame(destination, 0, Ask(1, id: "m-other").ToByteArray());
        var other = RemotePagesResponse.Parser.ParseFrom(ReadFrame(destination));
        WriteFrame(destination, 0, new RemotePagesRequest { MigrationId = "m-1", Vm = "vm-1" }.ToByteArray());
        var empty = RemotePagesResponse.Parser.ParseFrom(ReadFrame(destination));
        WriteFrame(destination, 0, Ask(5).ToByteArray());
        var ok = RemotePagesResponse.Parser.ParseFrom(ReadFrame(destination));

        Assert.Equal((uint)StatusCode.OutOfRange, outside.ErrorCode);
        Assert.Contains("page 64 is outside the VM's 64 pages", outside.ErrorMessage);
        Assert.Equal((uint)StatusCode.InvalidArgument, other.ErrorCode);
        Assert.Contains("m-other", other.ErrorMessage);
        Assert.Equal((uint)StatusCode.InvalidArgument, empty.ErrorCode);
        Assert.Contains("page_numbers is empty", empty.ErrorMessage);
        Assert.Equal(0u, ok.ErrorCode);
        Assert.Equal([5UL], ok.Batch.PageNumbers);
        await outgoing.WaitForNoUrgentAsync(Long, CancellationToken.None).AsTask().WaitAsync(Long);
        Assert.False(outgoing.HasUrgent);
    }

    [Fact]
    public async Task A_request_replies_in_the_checksum_kind_it_names_and_an_unknown_kind_gets_an_error_reply_naming_it()
    {
        using var served = await ServeAsync();
        var (outgoing, vm, destination, server) = served;

        var xxh3 = Ask(7);
        xxh3.Checksum = ChecksumKind.Xxh3;
        WriteFrame(destination, 0, xxh3.ToByteArray());
        var reply = RemotePagesResponse.Parser.ParseFrom(ReadFrame(destination));
        var unknown = Ask(8);
        unknown.Checksum = (ChecksumKind)11;
        WriteFrame(destination, 0, unknown.ToByteArray());
        var refused = RemotePagesResponse.Parser.ParseFrom(ReadFrame(destination));

        Assert.Equal(0u, reply.ErrorCode);
        Assert.Equal(MigrationFabric.Memory.Integrity.Xxh3.Hash(vm.Memory.GetPageBytes(7)), Assert.Single(reply.Batch.Checksums));
        Assert.Equal((uint)StatusCode.InvalidArgument, refused.ErrorCode);
        Assert.Contains("checksum kind 11", refused.ErrorMessage);
        // Refused before anything was taken from the pending set, and the push is not held by it.
        Assert.True(outgoing.Pending.IsSet(8));
        await outgoing.WaitForNoUrgentAsync(Long, CancellationToken.None).AsTask().WaitAsync(Long);
        Assert.False(outgoing.HasUrgent);
    }

    [Theory]
    [InlineData("compressed")]
    [InlineData("not protobuf")]
    [InlineData("too long")]
    public async Task A_garbled_request_gets_an_error_reply_naming_it_and_the_source_closes_the_channel(string garble)
    {
        using var served = await ServeAsync();
        var (outgoing, vm, destination, server) = served;

        if (garble == "compressed") WriteFrame(destination, 1, Ask(1).ToByteArray());
        else if (garble == "not protobuf") WriteFrame(destination, 0, [0xFF, 0xFF, 0xFF, 0xFF]);
        else
        {
            var header = new byte[5];
            BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(1), 64u << 20);
            destination.Send(header);
        }
        var reply = RemotePagesResponse.Parser.ParseFrom(ReadFrame(destination));
        int afterReply = destination.Receive(new byte[1]);
        destination.Shutdown(SocketShutdown.Send);
        await server.Completion.WaitAsync(Long);

        Assert.Equal((uint)StatusCode.InvalidArgument, reply.ErrorCode);
        Assert.Contains("garbled", reply.ErrorMessage);
        Assert.Equal(0, afterReply);
        Assert.NotNull(server.Error);
        Assert.Equal(0, outgoing.Requests);
    }

    [Fact]
    public async Task The_source_refuses_to_open_a_fault_channel_to_a_TLS_destination_naming_the_option()
    {
        var tls = new Uri("https://127.0.0.1:1");
        using var control = new MigrationFabric.Rpc.Client.RpcChannel(tls);

        var error = await Assert.ThrowsAsync<FaultChannelException>(() =>
            FaultChannelOpener.OpenAsync(control, tls, "m-1", "vm-1", Long, CancellationToken.None).WaitAsync(Long));

        Assert.Contains("TLS", error.Message);
        Assert.Contains("FaultTransport to Grpc", error.Message);
    }

    // ---- the destination's end: the faulting thread sends and blocks for the reply ----

    [Fact]
    public async Task The_destination_end_gets_the_reply_and_an_error_reply_fails_only_that_request()
    {
        var (destination, source) = await PairAsync();
        using var s = source;
        using var client = new FaultChannelClient(destination, Long);
        var fake = Task.Run(() =>
        {
            var open = RemotePagesRequest.Parser.ParseFrom(ReadFrame(source));
            var first = RemotePagesRequest.Parser.ParseFrom(ReadFrame(source));
            WriteFrame(source, 0, new RemotePagesResponse { ErrorCode = (uint)StatusCode.OutOfRange, ErrorMessage = "page 99 is outside" }.ToByteArray());
            var second = RemotePagesRequest.Parser.ParseFrom(ReadFrame(source));
            WriteFrame(source, 0, new RemotePagesResponse { ReceivedAtNs = 7 }.ToByteArray());
            return (open, first, second);
        });

        client.SendOpen("m-1", "vm-1");
        var refused = Assert.Throws<FaultChannelException>(() => client.Fetch(Ask(99), CancellationToken.None, out _));
        var reply = client.Fetch(Ask(3), CancellationToken.None, out long sentNs);
        var (open, first, second) = await fake.WaitAsync(Long);

        Assert.Equal("m-1", open.MigrationId);
        Assert.Empty(open.PageNumbers);
        Assert.Equal([99UL], first.PageNumbers);
        Assert.Contains("refused", refused.Message);
        Assert.Contains("OutOfRange", refused.Message);
        Assert.Contains("page 99 is outside", refused.Message);
        Assert.Equal([3UL], second.PageNumbers);
        Assert.Equal(7UL, reply.ReceivedAtNs);
        Assert.True(sentNs > 0);
    }

    [Theory]
    [InlineData("closed mid-fault", "closed the fault channel while a fault was out")]
    [InlineData("closed mid-frame", "in the middle of a frame")]
    [InlineData("garbled reply", "garbled reply")]
    [InlineData("compressed reply", "compressed flag 1")]
    [InlineData("oversized reply", "exceeds the fault channel's limit")]
    [InlineData("no reply", "no reply from")]
    public async Task A_source_that_fails_mid_fault_fails_the_fetch_by_name_and_leaves_the_channel_unusable(string failure, string expected)
    {
        var (destination, source) = await PairAsync();
        using var s = source;
        using var client = new FaultChannelClient(destination, failure == "no reply" ? TimeSpan.FromMilliseconds(300) : Long);
        var fake = Task.Run(() =>
        {
            ReadFrame(source);
            switch (failure)
            {
                case "closed mid-fault": source.Shutdown(SocketShutdown.Both); break;
                case "closed mid-frame": source.Send(new byte[] { 0, 0, 0, 0, 50, 1, 2 }); source.Shutdown(SocketShutdown.Both); break;
                case "garbled reply": WriteFrame(source, 0, [0xFF, 0xFF, 0xFF]); break;
                case "compressed reply": WriteFrame(source, 1, new RemotePagesResponse().ToByteArray()); break;
                case "oversized reply": source.Send(new byte[] { 0, 0x7F, 0, 0, 0 }); break;
                case "no reply": break;
            }
        });

        var error = Assert.Throws<FaultChannelException>(() => client.Fetch(Ask(1), CancellationToken.None, out _));
        await fake.WaitAsync(Long);
        var after = Assert.Throws<FaultChannelException>(() => client.Fetch(Ask(2), CancellationToken.None, out _));

        Assert.Contains(expected, error.Message);
        Assert.Contains("unusable", after.Message);
        Assert.Contains(expected, after.Message);
    }

    [Fact]
    public async Task Cancelling_a_fault_blocked_on_the_reply_ends_it_at_once()
    {
        var (destination, source) = await PairAsync();
        using var s = source;
        using var client = new FaultChannelClient(destination, Long);
        using var cts = new CancellationTokenSource();
        var fetch = Task.Run(() => client.Fetch(Ask(1), cts.Token, out _));
        ReadFrame(source);
        cts.Cancel();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => fetch.WaitAsync(Long));
    }
}
