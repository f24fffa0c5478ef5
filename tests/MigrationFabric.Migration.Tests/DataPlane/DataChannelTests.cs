using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Google.Protobuf;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Workloads;
using MigrationFabric.Migration.Codec;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.DataPlane.Tcp;
using MigrationFabric.Migration.Strategies;
using MigrationFabric.Migration.Tests.Support;
using MigrationFabric.Rpc;
using MigrationFabric.Rpc.Client;

namespace MigrationFabric.Migration.Tests.DataPlane;

/// <summary>The raw TCP data channel (Pages.OpenDataChannel) with real sockets: a whole migration over it, and each way it can go wrong.</summary>
public class DataChannelTests
{
    private const long Mib = 1 << 20;
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(30);

    private static PreCopyOptions Tcp(long? cap = null) => new() { DataChannel = DataChannel.Tcp, BandwidthCap = cap, Streams = 2 };

    [Fact]
    public async Task A_pre_copy_with_retransfers_moves_the_vm_intact_over_tcp_data_channels_and_the_report_says_so()
    {
        await using var pair = await MigrationPair.CreateAsync(16 * Mib);
        var listener = pair.Destination.Pages.StartDataChannels(new DataChannelListenerOptions());
        pair.Vm.Fill(stride: 2);
        pair.Vm.Start(new HotSetWorkload(new HotSetOptions { WorkingSetFraction = 0.1, TargetDirtyPagesPerSecond = 20_000 }));
        await pair.Vm.WaitForProgressAsync(2_000, Long);
        var incoming = pair.Accept();

        var report = await new PreCopy(Tcp(cap: 64 * Mib)).RunAsync(pair.Job()).WaitAsync(Long);

        await incoming.Completion.WaitAsync(Long);
        Assert.Equal(IncomingPhase.Completed, incoming.Phase);
        Assert.Equal(DataChannel.Tcp, report.DataChannel);
        Assert.Equal(pair.Vm.Memory.PageCount, report.PagesVerified);
        Assert.True(report.PagesSent > pair.Vm.Memory.PageCount, $"dirty pages were sent again: {report.PagesSent}");
        Assert.Equal(pair.Vm.Digest(), pair.Target.Digest());
        Assert.Equal(0, listener.OutstandingTokens);
        await pair.Vm.StopWorkloadAsync();
    }

    [Fact]
    public async Task Grpc_remains_selectable_and_reports_grpc()
    {
        await using var pair = await MigrationPair.CreateAsync(4 * Mib);
        pair.Vm.Fill(stride: 3);
        var incoming = pair.Accept();
        var report = await new PreCopy(new PreCopyOptions { DataChannel = DataChannel.Grpc }).RunAsync(pair.Job()).WaitAsync(Long);
        await incoming.Completion.WaitAsync(Long);
        Assert.Equal(DataChannel.Grpc, report.DataChannel);
        Assert.Equal(pair.Vm.Digest(), pair.Target.Digest());
    }

    [Fact]
    public async Task A_destination_without_a_listener_fails_the_migration_by_name_and_the_vm_stays_at_the_source()
    {
        await using var pair = await MigrationPair.CreateAsync(4 * Mib);
        pair.Vm.Fill(stride: 3);
        var incoming = pair.Accept();

        var error = await Assert.ThrowsAsync<MigrationFailedException>(() => new PreCopy(Tcp()).RunAsync(pair.Job()).WaitAsync(Long));

        Assert.Contains("no data-channel listener", error.Message);
        Assert.Contains("DataChannel = Grpc", error.Message);
        Assert.False(pair.Vm.Mmu.IsPaused);
        await Assert.ThrowsAsync<MigrationAbortedException>(() => incoming.Completion.WaitAsync(Long));
    }

    [Fact]
    public async Task A_tls_destination_is_refused_naming_the_option_never_a_silent_fallback()
    {
        await using var pair = await MigrationPair.CreateAsync(4 * Mib);
        pair.Destination.Pages.StartDataChannels(new DataChannelListenerOptions());
        pair.Vm.Fill(stride: 3);
        pair.Accept();
        var job = pair.Job();
        job = new MigrationJob
        {
            MigrationId = job.MigrationId, Vm = job.Vm, Memory = job.Memory, Mmu = job.Mmu, LocalPages = job.LocalPages, LocalAddress = job.LocalAddress,
            Destination = new UriBuilder(pair.Destination.Address) { Scheme = "https" }.Uri,
        };

        var error = await Assert.ThrowsAsync<MigrationFailedException>(() => new PreCopy(Tcp()).RunAsync(job).WaitAsync(Long));

        Assert.Contains("MigrationOptions.DataChannel", error.Message);
        Assert.Contains("TLS", error.Message);
        Assert.False(pair.Vm.Mmu.IsPaused);
    }

    [Fact]
    public async Task An_unknown_token_is_refused_with_permission_denied()
    {
        await using var agent = await Agent.StartAsync();
        var listener = agent.Pages.StartDataChannels(new DataChannelListenerOptions());
        using var socket = await ConnectAsync(listener.Port, new byte[16]);
        var error = await ReadErrorAsync(socket);
        Assert.Equal(StatusCode.PermissionDenied, error.Code);
        Assert.Contains("token is unknown, expired or already used", error.Message);
    }

    [Fact]
    public async Task A_token_is_single_use()
    {
        await using var agent = await Agent.StartAsync();
        using var target = new TestVm(4 * Mib);
        agent.Pages.StartDataChannels(new DataChannelListenerOptions());
        agent.Pages.Accept(new IncomingMigration("t-reuse", "vm-1", target.Memory, target.Mmu));
        var reply = await OpenAsync(agent, "t-reuse", 0);

        using var first = await ConnectAsync((int)reply.Port, reply.Token.ToByteArray());
        await WriteAsync(first, new PageStreamMessage { Open = Open("t-reuse", target, 0) });
        var granted = await ReadAckAsync(first);
        Assert.Equal(0u, granted.ErrorCode);
        Assert.True(granted.Window > 0);

        using var second = await ConnectAsync((int)reply.Port, reply.Token.ToByteArray());
        var error = await ReadErrorAsync(second);
        Assert.Equal(StatusCode.PermissionDenied, error.Code);
    }

    [Fact]
    public async Task An_expired_token_is_refused()
    {
        await using var agent = await Agent.StartAsync();
        using var target = new TestVm(4 * Mib);
        var clock = new ManualClock();
        agent.Pages.StartDataChannels(new DataChannelListenerOptions { TokenLifetime = TimeSpan.FromSeconds(5), TimeProvider = clock });
        agent.Pages.Accept(new IncomingMigration("t-expired", "vm-1", target.Memory, target.Mmu));
        var reply = await OpenAsync(agent, "t-expired", 0);
        clock.Advance(TimeSpan.FromSeconds(6));

        using var socket = await ConnectAsync((int)reply.Port, reply.Token.ToByteArray());
        var error = await ReadErrorAsync(socket);
        Assert.Equal(StatusCode.PermissionDenied, error.Code);
    }

    [Fact]
    public async Task OpenDataChannel_refuses_an_unknown_migration_and_an_unset_purpose()
    {
        await using var agent = await Agent.StartAsync();
        agent.Pages.StartDataChannels(new DataChannelListenerOptions());
        using var channel = new RpcChannel(agent.Address);
        var unknown = await Assert.ThrowsAsync<RpcException>(() => channel.AsyncUnaryCall(PagesContract.OpenDataChannel,
            new OpenDataChannelRequest { MigrationId = "nope", Purpose = DataChannelPurpose.PageStream }).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, unknown.StatusCode);
        var purpose = await Assert.ThrowsAsync<RpcException>(() => channel.AsyncUnaryCall(PagesContract.OpenDataChannel,
            new OpenDataChannelRequest { MigrationId = "nope" }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, purpose.StatusCode);
        Assert.Contains("purpose", purpose.Status.Detail);
    }

    [Fact]
    public async Task An_open_message_for_another_stream_than_the_token_was_issued_for_is_refused()
    {
        await using var agent = await Agent.StartAsync();
        using var target = new TestVm(4 * Mib);
        agent.Pages.StartDataChannels(new DataChannelListenerOptions());
        agent.Pages.Accept(new IncomingMigration("t-index", "vm-1", target.Memory, target.Mmu));
        var reply = await OpenAsync(agent, "t-index", 0);
        using var socket = await ConnectAsync((int)reply.Port, reply.Token.ToByteArray());
        await WriteAsync(socket, new PageStreamMessage { Open = Open("t-index", target, 3) });
        var error = await ReadErrorAsync(socket);
        Assert.Equal(StatusCode.InvalidArgument, error.Code);
        Assert.Contains("opened for migration t-index stream 0", error.Message);
    }

    [Theory]
    [InlineData("compressed-flag", "compressed flag is 1")]
    [InlineData("too-long", "exceeds the limit")]
    [InlineData("not-protobuf", "is not a PageStreamMessage")]
    public async Task A_garbled_frame_fails_the_migration_at_the_destination_and_the_source_hears_why(string defect, string message)
    {
        await using var agent = await Agent.StartAsync();
        using var target = new TestVm(4 * Mib);
        agent.Pages.StartDataChannels(new DataChannelListenerOptions());
        var incoming = agent.Pages.Accept(new IncomingMigration("t-garbled", "vm-1", target.Memory, target.Mmu));
        var reply = await OpenAsync(agent, "t-garbled", 0);
        using var socket = await ConnectAsync((int)reply.Port, reply.Token.ToByteArray());
        await WriteAsync(socket, new PageStreamMessage { Open = Open("t-garbled", target, 0) });
        Assert.Equal(0u, (await ReadAckAsync(socket)).ErrorCode);

        byte[] frame = defect switch
        {
            "compressed-flag" => [1, 0, 0, 0, 4, 1, 2, 3, 4],
            "too-long" => [0, 0x7f, 0xff, 0xff, 0xff],
            _ => [0, 0, 0, 0, 3, 0xff, 0xff, 0xff],
        };
        await socket.SendAsync(frame);

        var error = await ReadErrorAsync(socket);
        Assert.Equal(StatusCode.InvalidArgument, error.Code);
        Assert.Contains("garbled frame", error.Message);
        Assert.Contains(message, error.Message);
        await Assert.ThrowsAsync<MigrationAbortedException>(() => incoming.Completion.WaitAsync(Long));
    }

    [Fact]
    public async Task A_source_that_closes_mid_frame_is_a_lost_source_and_the_copy_is_discarded()
    {
        await using var agent = await Agent.StartAsync();
        using var target = new TestVm(4 * Mib);
        agent.Pages.StartDataChannels(new DataChannelListenerOptions());
        var incoming = agent.Pages.Accept(new IncomingMigration("t-cut", "vm-1", target.Memory, target.Mmu));
        var reply = await OpenAsync(agent, "t-cut", 0);
        using (var socket = await ConnectAsync((int)reply.Port, reply.Token.ToByteArray()))
        {
            await WriteAsync(socket, new PageStreamMessage { Open = Open("t-cut", target, 0) });
            Assert.Equal(0u, (await ReadAckAsync(socket)).ErrorCode);
            await socket.SendAsync(new byte[] { 0, 0, 1, 0, 0, 1, 2, 3 }); // a 64 KiB frame's header and three of its bytes
        }

        var aborted = await Assert.ThrowsAsync<MigrationAbortedException>(() => incoming.Completion.WaitAsync(Long));
        Assert.Contains("in the middle of a frame", aborted.Message);
        Assert.Equal(0, target.Memory.ResidentPages);
    }

    [Fact]
    public async Task A_destination_that_closes_its_data_channels_mid_migration_fails_it_by_name_and_the_vm_stays_at_the_source()
    {
        await using var pair = await MigrationPair.CreateAsync(16 * Mib);
        var listener = pair.Destination.Pages.StartDataChannels(new DataChannelListenerOptions());
        pair.Vm.Fill(stride: 1);
        var incoming = pair.Accept();
        var halfway = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var job = pair.Job(p => { if (p.PagesSent > 512) halfway.TrySetResult(); });

        var run = new PreCopy(Tcp(cap: 8 * Mib)).RunAsync(job);
        await halfway.Task.WaitAsync(Long);
        await pair.Destination.Pages.StopDataChannelsAsync();

        var error = await Assert.ThrowsAsync<MigrationFailedException>(() => run.WaitAsync(Long));
        Assert.Contains("page stream", error.Message);
        Assert.False(pair.Vm.Mmu.IsPaused);
        await Assert.ThrowsAsync<MigrationAbortedException>(() => incoming.Completion.WaitAsync(Long));
        Assert.Equal(0, listener.Connections);
    }

    [Fact]
    public async Task A_destination_killed_while_an_uncapped_pre_copy_streams_fails_it_by_name_even_between_batches()
    {
        // Uncapped, the destination may close a channel with every batch acknowledged: the sender must not wait for an ack that cannot come.
        // The kill lands exactly there: the progress report after round 2 (every batch flushed and acknowledged, before the
        // round's decision; no timed reports in between, ProgressInterval is long) holds the migration until the destination is
        // dead and the guest has dirtied more pages. Without the hold a round could end with no page dirtied (a starved vCPU on a
        // loaded machine), converge, and meet the killed control plane at SwitchOver ("the destination is unavailable") before
        // any page stream noticed (1 run in 4). With it, whatever the decision, the next thing sent is those dirty pages, on a
        // page stream (another round, or stop-and-copy's final pages).
        await using var pair = await MigrationPair.CreateAsync(16 * Mib);
        pair.Destination.Pages.StartDataChannels(new DataChannelListenerOptions());
        pair.Vm.Fill(stride: 1);
        pair.Vm.Start(new HotSetWorkload(new HotSetOptions { WorkingSetFraction = 0.5, TargetDirtyPagesPerSecond = 200_000 }));
        await pair.Vm.WaitForProgressAsync(2_000, Long);
        var incoming = pair.Accept();
        var secondRound = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var killed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var options = new PreCopyOptions { DataChannel = DataChannel.Tcp, AutoConverge = false, DowntimeTarget = TimeSpan.FromMilliseconds(0.001), ProgressInterval = TimeSpan.FromMinutes(10) };

        // The callback runs on the migration's thread: blocking it there is what holds the migration (only once).
        var run = new PreCopy(options).RunAsync(pair.Job(p => { if (p.Round >= 2 && secondRound.TrySetResult()) killed.Task.Wait(Long); }));
        await secondRound.Task.WaitAsync(Long);
        try
        {
            await pair.Destination.KillAsync();
            await pair.Destination.Pages.StopDataChannelsAsync();
            await pair.Vm.WaitForProgressAsync(1_000, Long);
        }
        finally
        {
            killed.TrySetResult();
        }

        var error = await Assert.ThrowsAsync<MigrationFailedException>(() => run.WaitAsync(Long));
        Assert.True(error.Message.Contains("page stream"), $"failed by the page stream, not elsewhere: {error.Message}");
        Assert.False(pair.Vm.Mmu.IsPaused);
        await Assert.ThrowsAsync<MigrationAbortedException>(() => incoming.Completion.WaitAsync(Long));
        await pair.Vm.StopWorkloadAsync();
    }

    [Fact]
    public async Task Cancelling_a_migration_closes_its_data_channels()
    {
        await using var pair = await MigrationPair.CreateAsync(16 * Mib);
        var listener = pair.Destination.Pages.StartDataChannels(new DataChannelListenerOptions());
        pair.Vm.Fill(stride: 1);
        var incoming = pair.Accept();
        var connected = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var job = pair.Job(p => { if (p.PagesSent > 256) connected.TrySetResult(); });
        using var cancel = new CancellationTokenSource();

        var run = new PreCopy(Tcp(cap: 8 * Mib)).RunAsync(job, cancel.Token);
        await connected.Task.WaitAsync(Long);
        Assert.Equal(2, listener.Connections);
        cancel.Cancel();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run.WaitAsync(Long));
        await Assert.ThrowsAsync<MigrationAbortedException>(() => incoming.Completion.WaitAsync(Long));
        // The destination sees both sockets closed: its read loops end and drop the connections.
        var deadline = DateTime.UtcNow + Long;
        while (listener.Connections > 0 && DateTime.UtcNow < deadline) await Task.Delay(20);
        Assert.Equal(0, listener.Connections);
        Assert.False(pair.Vm.Mmu.IsPaused);
    }

    private static StreamOpen Open(string id, TestVm target, uint index) =>
        new() { MigrationId = id, Vm = "vm-1", TotalPages = (ulong)target.Memory.PageCount, PageSize = Page.Size, StreamIndex = index };

    private static async Task<OpenDataChannelResponse> OpenAsync(Agent agent, string id, uint index)
    {
        using var channel = new RpcChannel(agent.Address);
        return await channel.AsyncUnaryCall(PagesContract.OpenDataChannel,
            new OpenDataChannelRequest { MigrationId = id, StreamIndex = index, Purpose = DataChannelPurpose.PageStream }).ResponseAsync.WaitAsync(Long);
    }

    private static async Task<Socket> ConnectAsync(int port, byte[] token)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port));
        await socket.SendAsync(token);
        return socket;
    }

    private static async Task WriteAsync(Socket socket, IMessage message)
    {
        var bytes = new byte[5 + message.CalculateSize()];
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(1), (uint)(bytes.Length - 5));
        message.WriteTo(bytes.AsSpan(5));
        await socket.SendAsync(bytes);
    }

    private static async Task<PageAck> ReadAckAsync(Socket socket)
    {
        using var timeout = new CancellationTokenSource(Long);
        var header = new byte[5];
        await ReadExactlyAsync(socket, header, timeout.Token);
        var body = new byte[BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(1))];
        await ReadExactlyAsync(socket, body, timeout.Token);
        return PageAck.Parser.ParseFrom(body);
    }

    private static async Task<(StatusCode Code, string Message)> ReadErrorAsync(Socket socket)
    {
        var ack = await ReadAckAsync(socket);
        return ((StatusCode)ack.ErrorCode, ack.ErrorMessage);
    }

    private static async Task ReadExactlyAsync(Socket socket, byte[] buffer, CancellationToken cancellationToken)
    {
        int got = 0;
        while (got < buffer.Length)
        {
            int n = await socket.ReceiveAsync(buffer.AsMemory(got), SocketFlags.None, cancellationToken);
            if (n == 0) throw new IOException($"the listener closed the connection after {got} of {buffer.Length} bytes");
            got += n;
        }
    }

    private sealed class ManualClock : TimeProvider
    {
        private DateTimeOffset _now = DateTimeOffset.UtcNow;

        public void Advance(TimeSpan by) => _now += by;

        public override DateTimeOffset GetUtcNow() => _now;
    }
}
