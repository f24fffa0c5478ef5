using Google.Protobuf;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Migration.Codec;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.Tests.Support;
using MigrationFabric.Rpc;
using MigrationFabric.Rpc.Client;

namespace MigrationFabric.Migration.Tests.DataPlane;

public class PagesServiceTests
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(30);

    private static StreamOpen Open(string id, ulong pages = 4096) => new() { MigrationId = id, Vm = "vm-1", TotalPages = pages, PageSize = Page.Size };

    private static async Task<(RpcException Error, IncomingMigration Incoming)> SendAsync(Agent agent, TestVm target, string id, params PageStreamMessage[] messages)
    {
        var incoming = agent.Pages.Accept(new IncomingMigration(id, "vm-1", target.Memory, target.Mmu));
        using var channel = new RpcChannel(agent.Address);
        using var call = channel.AsyncDuplexStreamingCall(PagesContract.PageStream);
        var error = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            foreach (var m in messages) await call.RequestStream.WriteAsync(m);
            while (await call.ResponseStream.MoveNext()) { }
        }).WaitAsync(Long);
        return (error, incoming);
    }

    private static PageBatch GoodBatch(long page, ulong sequence = 1)
    {
        var builder = new PageBatchBuilder(4);
        var bytes = new byte[Page.Size];
        new Random(1).NextBytes(bytes);
        builder.AddPage(page, bytes);
        var batch = builder.Build(1).Batch.Clone();
        batch.Sequence = sequence;
        return batch;
    }

    [Fact]
    public async Task A_corrupted_page_fails_the_stream_with_data_loss_naming_the_page_and_discards_the_copy()
    {
        await using var agent = await Agent.StartAsync();
        using var target = new TestVm(16 << 20);
        var batch = GoodBatch(77);
        var payload = batch.Payload.ToByteArray();
        payload[5] ^= 0x10;
        batch.Payload = ByteString.CopyFrom(payload);

        var (error, incoming) = await SendAsync(agent, target, "c1", new PageStreamMessage { Open = Open("c1") }, new PageStreamMessage { Batch = batch });

        Assert.Equal(StatusCode.DataLoss, error.StatusCode);
        Assert.Contains("page 77", error.Status.Detail);
        await Assert.ThrowsAsync<MigrationAbortedException>(() => incoming.Completion.WaitAsync(Long));
        Assert.Equal(0, target.Memory.ResidentPages);
    }

    [Fact]
    public async Task A_malformed_batch_fails_the_stream_with_invalid_argument()
    {
        await using var agent = await Agent.StartAsync();
        using var target = new TestVm(16 << 20);
        var batch = GoodBatch(3);
        batch.PageNumbers[0] = 1 << 30;
        var (error, _) = await SendAsync(agent, target, "c2", new PageStreamMessage { Open = Open("c2") }, new PageStreamMessage { Batch = batch });
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("outside the VM", error.Status.Detail);
    }

    [Theory]
    [InlineData("no-open", StatusCode.InvalidArgument, "first message must be open")]
    [InlineData("unknown", StatusCode.FailedPrecondition, "no migration 'nope' is expected")]
    [InlineData("size", StatusCode.InvalidArgument, "total_pages 12")]
    [InlineData("page-size", StatusCode.InvalidArgument, "page_size 8192")]
    [InlineData("sequence", StatusCode.InvalidArgument, "batch sequence 5, expected 1")]
    public async Task Bad_stream_input_gets_a_clear_status(string defect, StatusCode code, string message)
    {
        await using var agent = await Agent.StartAsync();
        using var target = new TestVm(16 << 20);
        string id = "s-" + defect;
        var open = Open(id);
        PageStreamMessage[] messages = defect switch
        {
            "no-open" => [new() { Batch = GoodBatch(1) }],
            "unknown" => [new() { Open = Open("nope") }],
            "size" => [new() { Open = Open(id, 12) }],
            "page-size" => [new() { Open = new StreamOpen(open) { PageSize = 8192 } }],
            _ => [new() { Open = open }, new() { Batch = GoodBatch(1, 5) }],
        };
        var (error, _) = await SendAsync(agent, target, id, messages);
        Assert.Equal(code, error.StatusCode);
        Assert.Contains(message, error.Status.Detail);
    }

    [Fact]
    public async Task Remote_pages_for_an_unknown_migration_is_not_found_and_other_calls_name_the_migration()
    {
        await using var agent = await Agent.StartAsync();
        using var channel = new RpcChannel(agent.Address);
        var request = new RemotePagesRequest { MigrationId = "x", Vm = "vm-1" };
        request.PageNumbers.Add(1);
        var e = await Assert.ThrowsAsync<RpcException>(() => channel.AsyncUnaryCall(PagesContract.RemotePages, request).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, e.StatusCode);
        e = await Assert.ThrowsAsync<RpcException>(() => channel.AsyncUnaryCall(PagesContract.SwitchOver, new SwitchOverRequest { MigrationId = "x" }).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        Assert.Contains("'x'", e.Status.Detail);
        e = await Assert.ThrowsAsync<RpcException>(() => channel.AsyncUnaryCall(PagesContract.VerifyPages, new VerifyPagesRequest()).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        var abort = await channel.AsyncUnaryCall(PagesContract.AbortMigration, new AbortMigrationRequest { MigrationId = "x" }).ResponseAsync;
        Assert.False(abort.Found);
    }

    [Fact]
    public async Task Acks_grant_the_post_copy_window_once_post_copy_has_begun()
    {
        await using var agent = await Agent.StartAsync();
        using var target = new TestVm(16 << 20);
        agent.Pages.Accept(new IncomingMigration("w1", "vm-1", target.Memory, target.Mmu, new IncomingMigrationOptions { Window = 8, PostCopyWindow = 2 }));
        using var channel = new RpcChannel(agent.Address);
        using var call = channel.AsyncDuplexStreamingCall(PagesContract.PageStream);
        await call.RequestStream.WriteAsync(new PageStreamMessage { Open = Open("w1") });
        Assert.True(await call.ResponseStream.MoveNext().WaitAsync(Long));
        Assert.Equal(8u, call.ResponseStream.Current.Window);
        await call.RequestStream.WriteAsync(new PageStreamMessage { Batch = GoodBatch(10, sequence: 1) });
        Assert.True(await call.ResponseStream.MoveNext().WaitAsync(Long));
        Assert.Equal(8u, call.ResponseStream.Current.Window); // before switch-over: the full window

        var bits = new byte[(target.Memory.PageCount + 7) / 8];
        Array.Fill(bits, (byte)0xFF);
        bits[10 / 8] &= unchecked((byte)~(1 << (10 % 8)));
        await channel.AsyncUnaryCall(PagesContract.SwitchOver, new SwitchOverRequest
        {
            MigrationId = "w1", PendingPages = ByteString.CopyFrom(bits), PendingCount = (ulong)target.Memory.PageCount - 1, SourceAddress = agent.Address.ToString(),
        }).ResponseAsync.WaitAsync(Long);
        await call.RequestStream.WriteAsync(new PageStreamMessage { Batch = GoodBatch(11, sequence: 2) });
        Assert.True(await call.ResponseStream.MoveNext().WaitAsync(Long));

        Assert.Equal(2u, call.ResponseStream.Current.Window);
        Assert.Equal(PageResidency.Resident, target.Memory.GetResidency(11));
    }

    [Theory]
    [InlineData(false, "did not start")]
    [InlineData(true, "did not finish")]
    public async Task A_source_that_never_finishes_the_integrity_check_fails_the_migration_after_the_verify_timeout(bool oneChunk, string expected)
    {
        await using var agent = await Agent.StartAsync();
        using var target = new TestVm(1 << 20);
        var incoming = agent.Pages.Accept(new IncomingMigration("v1", "vm-1", target.Memory, target.Mmu, new IncomingMigrationOptions { VerifyTimeout = TimeSpan.FromSeconds(3) }));
        using var channel = new RpcChannel(agent.Address);
        // Every page is zero, so nothing needs to be sent: the switch-over leaves the VM resumed with every page here.
        await channel.AsyncUnaryCall(PagesContract.SwitchOver, new SwitchOverRequest { MigrationId = "v1" }).ResponseAsync.WaitAsync(Long);
        Assert.Equal(IncomingPhase.Resumed, incoming.Phase);
        if (oneChunk)
        {
            // The first chunk of the check, then nothing.
            var first = new VerifyPagesRequest { MigrationId = "v1", FirstPage = 0, Last = false };
            first.Digests.Add(0UL);
            await channel.AsyncUnaryCall(PagesContract.VerifyPages, first).ResponseAsync.WaitAsync(Long);
        }

        // The source is gone (or stalled) and sends nothing more: the destination does not wait forever.
        var e = await Assert.ThrowsAsync<TimeoutException>(() => incoming.Completion.WaitAsync(Long));
        Assert.Contains(expected, e.Message);
        Assert.Contains("VerifyTimeout", e.Message);
        Assert.Equal(IncomingPhase.Failed, incoming.Phase);
    }

    [Fact]
    public async Task A_source_lost_after_its_last_post_copy_page_fails_the_migration_at_once_as_unverifiable()
    {
        await using var agent = await Agent.StartAsync();
        using var target = new TestVm(16 * 4096);
        var incoming = agent.Pages.Accept(new IncomingMigration("l1", "vm-1", target.Memory, target.Mmu));
        using var channel = new RpcChannel(agent.Address);
        var call = channel.AsyncDuplexStreamingCall(PagesContract.PageStream);
        await call.RequestStream.WriteAsync(new PageStreamMessage { Open = Open("l1", pages: 16) });
        Assert.True(await call.ResponseStream.MoveNext().WaitAsync(Long));
        // Switch over with every page still at the source, then push all of them: nothing is left to lose.
        await channel.AsyncUnaryCall(PagesContract.SwitchOver, new SwitchOverRequest
        {
            MigrationId = "l1", PendingPages = ByteString.CopyFrom(0xFF, 0xFF), PendingCount = 16, SourceAddress = agent.Address.ToString(),
        }).ResponseAsync.WaitAsync(Long);
        var builder = new PageBatchBuilder(16);
        var bytes = new byte[Page.Size];
        for (int p = 0; p < 16; p++) { new Random(p).NextBytes(bytes); builder.AddPage(p, bytes); }
        var batch = builder.Build(1).Batch.Clone();
        batch.Sequence = 1;
        await call.RequestStream.WriteAsync(new PageStreamMessage { Batch = batch });
        Assert.True(await call.ResponseStream.MoveNext().WaitAsync(Long));
        Assert.Equal(0, incoming.PagesRemaining);

        // The source goes before its integrity check: its stream breaks without a close.
        call.Dispose();

        var e = await Assert.ThrowsAsync<IOException>(() => incoming.Completion.WaitAsync(Long));
        Assert.Contains("every page had arrived, but the integrity check could not run", e.Message);
        Assert.Equal(IncomingPhase.Failed, incoming.Phase);
    }

    [Fact]
    public void A_verify_timeout_of_zero_is_refused_by_name()
    {
        using var target = new TestVm(1 << 20);
        var e = Assert.Throws<ArgumentException>(() => new IncomingMigration("v0", "vm-1", target.Memory, target.Mmu, new IncomingMigrationOptions { VerifyTimeout = TimeSpan.Zero }));
        Assert.Contains("VerifyTimeout", e.Message);
    }

    [Fact]
    public void A_post_copy_window_of_zero_is_refused_by_name()
    {
        using var target = new TestVm(1 << 20);
        var e = Assert.Throws<ArgumentException>(() => new IncomingMigration("w0", "vm-1", target.Memory, target.Mmu, new IncomingMigrationOptions { PostCopyWindow = 0 }));
        Assert.Contains("PostCopyWindow", e.Message);
    }

    [Fact]
    public async Task Switch_over_with_a_pending_bitmap_of_the_wrong_size_is_invalid_argument()
    {
        await using var agent = await Agent.StartAsync();
        using var target = new TestVm(16 << 20);
        agent.Pages.Accept(new IncomingMigration("p1", "vm-1", target.Memory, target.Mmu));
        using var channel = new RpcChannel(agent.Address);
        var e = await Assert.ThrowsAsync<RpcException>(() => channel.AsyncUnaryCall(PagesContract.SwitchOver,
            new SwitchOverRequest { MigrationId = "p1", PendingPages = ByteString.CopyFrom(1, 2, 3), PendingCount = 2 }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("pending_pages has 3 bytes", e.Status.Detail);
    }

    [Fact]
    public async Task Token_bucket_holds_the_average_rate_of_its_cap()
    {
        var bucket = new TokenBucket(bytesPerSecond: 10 << 20, burstBytes: 1 << 20);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (int i = 0; i < 6; i++) await bucket.TakeAsync(1 << 20, CancellationToken.None);
        // 6 MiB with a 1 MiB burst at 10 MiB/s needs at least 0.5 s: a lower bound, never an upper one.
        Assert.True(clock.Elapsed >= TimeSpan.FromMilliseconds(450), $"took {clock.Elapsed}");
        Assert.Throws<ArgumentOutOfRangeException>(() => new TokenBucket(0, 1));
    }
}
