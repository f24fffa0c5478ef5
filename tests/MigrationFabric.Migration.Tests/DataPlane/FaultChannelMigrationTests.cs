using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Google.Protobuf;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Workloads;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.DataPlane.FaultChannel;
using MigrationFabric.Migration.DataPlane.Tcp;
using MigrationFabric.Migration.Reporting;
using MigrationFabric.Migration.Strategies;
using MigrationFabric.Migration.Tests.Support;
using MigrationFabric.Rpc;
using MigrationFabric.Rpc.Client;

namespace MigrationFabric.Migration.Tests.DataPlane;

/// <summary>Post-copy with its remote faults on the fault channel (FaultTransport = Tcp), between real agents, and a destination facing a source that misbehaves on it.</summary>
public class FaultChannelMigrationTests
{
    private const long Mib = 1 << 20;
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(30);

    // Test agents may already run the listener (as host agents do); the fault channel needs one.
    private static void Listen(Agent agent)
    {
        if (agent.Pages.DataChannels is null) agent.Pages.StartDataChannels(new DataChannelListenerOptions());
    }

    [Fact]
    public async Task Post_copy_serves_the_running_destinations_faults_over_the_fault_channel_and_verifies()
    {
        await using var pair = await MigrationPair.CreateAsync(16 * Mib);
        Listen(pair.Destination);
        pair.Vm.Fill(stride: 1);
        var incoming = pair.Accept((_, _) =>
        {
            pair.Target.Start(new HotSetWorkload(new HotSetOptions { WorkingSetFraction = 0.5, TargetDirtyPagesPerSecond = 0, Seed = 3 }));
            return Task.CompletedTask;
        });
        var options = new PostCopyOptions { BandwidthCap = 16 * Mib, Prefetch = 8, FaultTransport = RemoteFaultTransport.Tcp };

        var report = await new PostCopy(options).RunAsync(pair.Job()).WaitAsync(Long);

        await incoming.Completion.WaitAsync(Long);
        Assert.Equal(IncomingPhase.Completed, incoming.Phase);
        Assert.NotNull(incoming.AttachedFaultChannel);
        Assert.True(report.RemoteFaults > 0, "the destination workload faulted pages in");
        Assert.True(report.PagesServedToFaults >= report.RemoteFaults);
        Assert.Equal(pair.Vm.Memory.PageCount, report.PagesVerified);
        var steps = incoming.RemoteFaultSteps;
        Assert.Equal(incoming.RemoteFaults, steps.Total.Count);
        Assert.True(steps.Request.Count > 0 && steps.Request.Count == steps.Reply.Count, $"split faults: {steps.Request.Count}");
        Assert.True(pair.Source.Pages.RemotePagesServed.Write.Count >= steps.Request.Count);
        await pair.Target.StopWorkloadAsync();
    }

    [Fact]
    public async Task Hybrid_post_copies_its_remainder_over_the_fault_channel()
    {
        await using var pair = await MigrationPair.CreateAsync(32 * Mib);
        Listen(pair.Destination);
        pair.Vm.Fill(stride: 1);
        var incoming = pair.Accept();
        // A tiny downtime target and pages written once the only round is sending (after its harvest): it cannot converge, so those go post-copy.
        var options = new HybridOptions { PreCopyRounds = 1, DowntimeTarget = TimeSpan.FromTicks(1), AutoConverge = false, ProgressInterval = TimeSpan.FromTicks(1),
            FaultTransport = RemoteFaultTransport.Tcp };
        const int Poked = 16;
        using var poker = pair.Vm.Mmu.CreateVcpu();
        int poked = 0;
        var job = pair.Job(p =>
        {
            if (p.Phase != MigrationPhase.PreCopy || p.PagesSent == 0 || Interlocked.Exchange(ref poked, 1) != 0) return;
            for (long page = pair.Vm.Memory.PageCount - Poked; page < pair.Vm.Memory.PageCount; page++)
                poker.WriteUInt64(page << Page.Shift, 0xC0FFEEUL + (ulong)page);
        });

        var report = await new Hybrid(options).RunAsync(job).WaitAsync(Long);

        await incoming.Completion.WaitAsync(Long);
        Assert.Equal(IncomingPhase.Completed, incoming.Phase);
        Assert.Equal(1, poked);
        Assert.True(report.PostCopyPages >= Poked, $"post-copy pages {report.PostCopyPages}");
        Assert.NotNull(incoming.AttachedFaultChannel);
        Assert.Equal(pair.Vm.Memory.PageCount, report.PagesVerified);
        Assert.Equal(pair.Vm.Digest(), pair.Target.Digest());
    }

    [Fact]
    public async Task A_destination_without_a_data_channel_listener_refuses_the_fault_channel_and_the_VM_stays_at_the_source()
    {
        await using var pair = await MigrationPair.CreateAsync(4 * Mib);
        await pair.Destination.Pages.StopDataChannelsAsync();
        pair.Vm.Fill(stride: 1);
        var incoming = pair.Accept();
        // The page streams on gRPC, so that the fault channel is the only thing needing the listener.
        var options = new PostCopyOptions { DataChannel = DataChannel.Grpc, FaultTransport = RemoteFaultTransport.Tcp };

        var error = await Assert.ThrowsAsync<MigrationFailedException>(() => new PostCopy(options).RunAsync(pair.Job()).WaitAsync(Long));

        Assert.Contains("refused the post-copy fault channel", error.Message);
        Assert.Contains("FaultTransport = Grpc", error.Message);
        Assert.Contains("StartDataChannels", error.Message);
        Assert.False(pair.Vm.Mmu.IsPaused);
        await Assert.ThrowsAsync<MigrationAbortedException>(() => incoming.Completion.WaitAsync(Long));
    }

    // ---- a destination facing a source written here byte by byte ----

    private sealed class FakeSource : IAsyncDisposable
    {
        public required Agent Destination { get; init; }
        public required TestVm Target { get; init; }
        public required IncomingMigration Incoming { get; init; }
        public required Socket Channel { get; init; }
        public required RpcChannel Control { get; init; }

        public static async Task<FakeSource> StartAsync()
        {
            var destination = await Agent.StartAsync();
            Listen(destination);
            var target = new TestVm(Mib);
            var incoming = destination.Pages.Accept(new IncomingMigration("m-fake", "vm-1", target.Memory, target.Mmu));
            var control = new RpcChannel(destination.Address);
            var channel = await OpenAsync(control);
            Assert.Equal(new RemotePagesRequest { MigrationId = "m-fake", Vm = "vm-1" }, RemotePagesRequest.Parser.ParseFrom(ReadFrame(channel)));
            // Every page pending: the destination resumes with all of its memory still here at the "source".
            long pages = target.Memory.PageCount;
            var bits = new byte[(pages + 7) / 8];
            Array.Fill(bits, (byte)0xFF);
            await control.AsyncUnaryCall(PagesContract.SwitchOver, new SwitchOverRequest
            {
                MigrationId = "m-fake", PendingPages = ByteString.CopyFrom(bits), PendingCount = (ulong)pages, SourceAddress = "http://127.0.0.1:1",
            }).ResponseAsync.WaitAsync(Long);
            return new FakeSource { Destination = destination, Target = target, Incoming = incoming, Channel = channel, Control = control };
        }

        public static async Task<Socket> OpenAsync(RpcChannel control)
        {
            var grant = await control.AsyncUnaryCall(PagesContract.OpenDataChannel,
                new OpenDataChannelRequest { MigrationId = "m-fake", Purpose = DataChannelPurpose.RemoteFaults }).ResponseAsync.WaitAsync(Long);
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(IPAddress.Loopback, (int)grant.Port);
            socket.Send(grant.Token.Span);
            return socket;
        }

        /// <summary>A vCPU reading page 5 on its own thread: a remote fault.</summary>
        public Task TouchAsync() => VcpuThread.Start(() =>
        {
            using var cpu = Target.Mmu.CreateVcpu();
            cpu.Read(5L << Page.Shift, new byte[8]);
        });

        public async ValueTask DisposeAsync()
        {
            Channel.Dispose();
            Control.Dispose();
            Target.Dispose();
            await Destination.DisposeAsync();
        }
    }

    private static byte[] ReadFrame(Socket socket)
    {
        var header = new byte[5];
        ReadExactly(socket, header);
        var body = new byte[BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(1))];
        ReadExactly(socket, body);
        return body;
    }

    private static void ReadExactly(Socket socket, Span<byte> into)
    {
        socket.ReceiveTimeout = 30_000;
        while (!into.IsEmpty)
        {
            int n = socket.Receive(into);
            if (n == 0) throw new EndOfStreamException("peer closed");
            into = into[n..];
        }
    }

    [Theory]
    [InlineData("closed mid-fault", "closed the fault channel while a fault was out")]
    [InlineData("garbled reply", "garbled reply")]
    public async Task A_source_that_closes_or_garbles_mid_fault_stops_the_vCPU_by_name_and_the_migration_reports_the_source_lost(string failure, string expected)
    {
        await using var fake = await FakeSource.StartAsync();
        var touch = fake.TouchAsync();
        var request = RemotePagesRequest.Parser.ParseFrom(ReadFrame(fake.Channel));
        Assert.Equal(5UL, request.PageNumbers[0]);
        if (failure == "closed mid-fault") fake.Channel.Shutdown(SocketShutdown.Both);
        else fake.Channel.Send(new byte[] { 0, 0, 0, 0, 3, 0xFF, 0xFF, 0xFF });

        var error = await Assert.ThrowsAsync<PageFaultException>(() => touch.WaitAsync(Long));
        var lost = await Assert.ThrowsAsync<MigrationSourceLostException>(() => fake.Incoming.Completion.WaitAsync(Long));

        Assert.Contains("fault channel", error.Message);
        Assert.Contains(expected, error.Message);
        Assert.Contains(expected, lost.ToString());
    }

    [Fact]
    public async Task A_reply_the_source_refused_stops_the_vCPU_with_the_sources_message()
    {
        await using var fake = await FakeSource.StartAsync();
        var touch = fake.TouchAsync();
        ReadFrame(fake.Channel);
        var refusal = new RemotePagesResponse { ErrorCode = (uint)StatusCode.OutOfRange, ErrorMessage = "page 5 is not here" }.ToByteArray();
        var frame = new byte[5 + refusal.Length];
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(1), (uint)refusal.Length);
        refusal.CopyTo(frame, 5);
        fake.Channel.Send(frame);

        var error = await Assert.ThrowsAsync<PageFaultException>(() => touch.WaitAsync(Long));

        Assert.Contains("refused", error.Message);
        Assert.Contains("page 5 is not here", error.Message);
    }

    [Fact]
    public async Task A_second_fault_channel_or_one_after_switch_over_is_refused_with_an_error_frame()
    {
        await using var fake = await FakeSource.StartAsync();
        using var second = await FakeSource.OpenAsync(fake.Control);

        var refusal = RemotePagesResponse.Parser.ParseFrom(ReadFrame(second));

        Assert.Equal((uint)StatusCode.FailedPrecondition, refusal.ErrorCode);
        Assert.Contains("before switch-over", refusal.ErrorMessage);
        var e = await Assert.ThrowsAsync<RpcException>(() => fake.Control.AsyncUnaryCall(PagesContract.OpenDataChannel,
            new OpenDataChannelRequest { MigrationId = "m-fake", StreamIndex = 1, Purpose = DataChannelPurpose.RemoteFaults }).ResponseAsync.WaitAsync(Long));
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("stream_index 0", e.Status.Detail);
    }
}
