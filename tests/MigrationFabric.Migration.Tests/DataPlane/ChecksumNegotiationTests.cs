using Google.Protobuf;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Integrity;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Migration.Codec;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.RemotePaging;
using MigrationFabric.Migration.Tests.Support;
using MigrationFabric.Rpc;
using MigrationFabric.Rpc.Client;

namespace MigrationFabric.Migration.Tests.DataPlane;

/// <summary>The per-page checksum kind a stream's open names is what the destination verifies and keeps; every other message of the migration must agree.</summary>
public class ChecksumNegotiationTests
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(30);

    private static StreamOpen Open(string id, ChecksumKind kind, uint index = 0) => new()
    {
        MigrationId = id, Vm = "vm-1", TotalPages = 4096, PageSize = Page.Size, StreamIndex = index,
        Codec = new CodecOptions { Compression = Compression.None, Checksum = kind },
    };

    private static PageBatch Batch(long page, ulong sequence, PageDigestKind kind, int seed = 1)
    {
        var builder = new PageBatchBuilder(2, checksum: kind);
        var bytes = new byte[Page.Size];
        new Random(seed).NextBytes(bytes);
        builder.AddPage(page, bytes);
        builder.AddZeroPage(page + 1);
        var batch = builder.Build(1).Batch.Clone();
        batch.Sequence = sequence;
        return batch;
    }

    [Fact]
    public async Task An_unknown_checksum_kind_in_the_stream_open_is_refused_by_name()
    {
        await using var agent = await Agent.StartAsync();
        using var target = new TestVm(16 << 20);
        var incoming = agent.Pages.Accept(new IncomingMigration("k1", "vm-1", target.Memory, target.Mmu));
        using var channel = new RpcChannel(agent.Address);
        using var call = channel.AsyncDuplexStreamingCall(PagesContract.PageStream);

        var e = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            await call.RequestStream.WriteAsync(new PageStreamMessage { Open = Open("k1", (ChecksumKind)9) });
            while (await call.ResponseStream.MoveNext()) { }
        }).WaitAsync(Long);

        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("checksum kind 9", e.Status.Detail);
        Assert.Null(incoming.Checksum);
    }

    [Fact]
    public async Task An_xxh3_stream_is_verified_and_kept_as_xxh3_and_a_second_stream_naming_xxh64_is_refused()
    {
        await using var agent = await Agent.StartAsync();
        using var target = new TestVm(16 << 20);
        var incoming = agent.Pages.Accept(new IncomingMigration("k2", "vm-1", target.Memory, target.Mmu));
        using var channel = new RpcChannel(agent.Address);
        using var call = channel.AsyncDuplexStreamingCall(PagesContract.PageStream);
        await call.RequestStream.WriteAsync(new PageStreamMessage { Open = Open("k2", ChecksumKind.Xxh3) });
        Assert.True(await call.ResponseStream.MoveNext().WaitAsync(Long));
        await call.RequestStream.WriteAsync(new PageStreamMessage { Batch = Batch(10, 1, PageDigestKind.Xxh3) });
        Assert.True(await call.ResponseStream.MoveNext().WaitAsync(Long));
        Assert.Equal(2UL, call.ResponseStream.Current.PagesApplied);
        Assert.Equal(PageDigestKind.Xxh3, incoming.Checksum);

        using var second = channel.AsyncDuplexStreamingCall(PagesContract.PageStream);
        var refused = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            await second.RequestStream.WriteAsync(new PageStreamMessage { Open = Open("k2", ChecksumKind.Xxh64, index: 1) });
            while (await second.ResponseStream.MoveNext()) { }
        }).WaitAsync(Long);
        Assert.Equal(StatusCode.InvalidArgument, refused.StatusCode);
        Assert.Contains("Xxh64", refused.Status.Detail);
        Assert.Contains("Xxh3", refused.Status.Detail);

        // The first stream goes on in its kind: an XXH64 batch on it does not verify.
        await call.RequestStream.WriteAsync(new PageStreamMessage { Batch = Batch(20, 2, PageDigestKind.Xxh64) });
        var loss = await Assert.ThrowsAsync<RpcException>(async () => { while (await call.ResponseStream.MoveNext()) { } }).WaitAsync(Long);
        Assert.Equal(StatusCode.DataLoss, loss.StatusCode);
        Assert.Contains("page 20", loss.Status.Detail);
    }

    [Fact]
    public async Task The_integrity_check_compares_in_the_streams_kind_and_refuses_another_kind_by_name()
    {
        await using var agent = await Agent.StartAsync();
        using var target = new TestVm(16 << 20);
        var incoming = agent.Pages.Accept(new IncomingMigration("k3", "vm-1", target.Memory, target.Mmu));
        using var channel = new RpcChannel(agent.Address);
        using (var call = channel.AsyncDuplexStreamingCall(PagesContract.PageStream))
        {
            await call.RequestStream.WriteAsync(new PageStreamMessage { Open = Open("k3", ChecksumKind.Xxh3) });
            Assert.True(await call.ResponseStream.MoveNext().WaitAsync(Long));
            await call.RequestStream.WriteAsync(new PageStreamMessage { Batch = Batch(10, 1, PageDigestKind.Xxh3, seed: 5) });
            Assert.True(await call.ResponseStream.MoveNext().WaitAsync(Long));
            await call.RequestStream.WriteAsync(new PageStreamMessage { Close = new StreamClose { Batches = 1, Pages = 2 } });
            await call.RequestStream.CompleteAsync();
            while (await call.ResponseStream.MoveNext().WaitAsync(Long)) { }
        }

        var switchOver = await Assert.ThrowsAsync<RpcException>(() => channel.AsyncUnaryCall(PagesContract.SwitchOver,
            new SwitchOverRequest { MigrationId = "k3", Checksum = ChecksumKind.Xxh64 }).ResponseAsync.WaitAsync(Long));
        Assert.Equal(StatusCode.InvalidArgument, switchOver.StatusCode);
        Assert.Contains("the switch-over names checksum Xxh64", switchOver.Status.Detail);
        Assert.Equal(IncomingPhase.Receiving, incoming.Phase);

        await channel.AsyncUnaryCall(PagesContract.SwitchOver, new SwitchOverRequest { MigrationId = "k3", Checksum = ChecksumKind.Xxh3 }).ResponseAsync.WaitAsync(Long);
        var digests = new ulong[target.Memory.PageCount];
        for (long p = 0; p < digests.Length; p++) digests[p] = PageDigest.Of(target.Memory, p, kind: PageDigestKind.Xxh3);
        var wrongKind = new VerifyPagesRequest { MigrationId = "k3", FirstPage = 0, Last = true, Checksum = ChecksumKind.Xxh64 };
        wrongKind.Digests.Add(digests);
        var verify = await Assert.ThrowsAsync<RpcException>(() => channel.AsyncUnaryCall(PagesContract.VerifyPages, wrongKind).ResponseAsync.WaitAsync(Long));
        Assert.Equal(StatusCode.InvalidArgument, verify.StatusCode);
        Assert.Contains("VerifyPages names checksum Xxh64", verify.Status.Detail);

        // Page 10 arrived with its XXH3 checksum, page 11 as a zero page: both compare equal to the source's XXH3 digests.
        var check = new VerifyPagesRequest { MigrationId = "k3", FirstPage = 0, Last = true, Checksum = ChecksumKind.Xxh3 };
        check.Digests.Add(digests);
        var response = await channel.AsyncUnaryCall(PagesContract.VerifyPages, check).ResponseAsync.WaitAsync(Long);
        // Pages never sent hold 0 in the destination's table (not the zero page's digest): those mismatch, the sent ones do not.
        Assert.DoesNotContain(10UL, response.MismatchedPages);
        Assert.DoesNotContain(11UL, response.MismatchedPages);
        Assert.Equal((ulong)target.Memory.PageCount - 2, response.MismatchedCount);
    }

    [Fact]
    public async Task Remote_paging_replies_in_the_kind_asked_and_refuses_an_unknown_kind_by_name()
    {
        await using var agent = await Agent.StartAsync();
        using var memory = new GuestMemory(1 << 20);
        var bytes = new byte[Page.Size];
        new Random(3).NextBytes(bytes);
        memory.TryInstall(2, PageResidency.Zero, bytes);
        agent.Pages.Hold(new RemotePageStore("vm-s", memory));
        using var channel = new RpcChannel(agent.Address);

        var ask = new RemotePagesRequest { Vm = "vm-s", PageNumbers = { 2UL, 3UL }, Checksum = ChecksumKind.Xxh3 };
        var reply = await channel.AsyncUnaryCall(PagesContract.RemotePages, ask).ResponseAsync.WaitAsync(Long);
        Assert.Equal(new[] { Xxh3.Hash(bytes), PageDigest.ZeroPageXxh3 }, reply.Batch.Checksums);
        var asked64 = await channel.AsyncUnaryCall(PagesContract.RemotePages, new RemotePagesRequest { Vm = "vm-s", PageNumbers = { 2UL } }).ResponseAsync.WaitAsync(Long);
        Assert.Equal(Xxh64.Hash(bytes), Assert.Single(asked64.Batch.Checksums));

        var unknown = await Assert.ThrowsAsync<RpcException>(() => channel.AsyncUnaryCall(PagesContract.RemotePages,
            new RemotePagesRequest { Vm = "vm-s", PageNumbers = { 2UL }, Checksum = (ChecksumKind)5 }).ResponseAsync.WaitAsync(Long));
        Assert.Equal(StatusCode.InvalidArgument, unknown.StatusCode);
        Assert.Contains("checksum kind 5", unknown.Status.Detail);

        // A page-out in XXH3 is verified in XXH3; one that names an unknown kind is refused before any page is kept.
        var builder = new PageBatchBuilder(1, checksum: PageDigestKind.Xxh3);
        var stored = new byte[Page.Size];
        new Random(4).NextBytes(stored);
        builder.AddPage(7, stored);
        var batch = builder.Build(0).Batch.Clone();
        await channel.AsyncUnaryCall(PagesContract.StorePages, new StorePagesRequest { Vm = "vm-s", Batch = batch, Checksum = ChecksumKind.Xxh3 }).ResponseAsync.WaitAsync(Long);
        Assert.Equal(stored, memory.GetPageBytes(7).ToArray());
        var builder2 = new PageBatchBuilder(1, checksum: PageDigestKind.Xxh3);
        builder2.AddPage(8, stored);
        var store = await Assert.ThrowsAsync<RpcException>(() => channel.AsyncUnaryCall(PagesContract.StorePages,
            new StorePagesRequest { Vm = "vm-s", Batch = builder2.Build(0).Batch.Clone(), Checksum = (ChecksumKind)6 }).ResponseAsync.WaitAsync(Long));
        Assert.Equal(StatusCode.InvalidArgument, store.StatusCode);
        Assert.Contains("checksum kind 6", store.Status.Detail);
        Assert.Equal(PageResidency.Zero, memory.GetResidency(8));
        // Named XXH64 (or not named) while the batch carries XXH3: the store finds the mismatch.
        var builder3 = new PageBatchBuilder(1, checksum: PageDigestKind.Xxh3);
        builder3.AddPage(9, stored);
        var loss = await Assert.ThrowsAsync<RpcException>(() => channel.AsyncUnaryCall(PagesContract.StorePages,
            new StorePagesRequest { Vm = "vm-s", Batch = builder3.Build(0).Batch.Clone() }).ResponseAsync.WaitAsync(Long));
        Assert.Equal(StatusCode.DataLoss, loss.StatusCode);
    }
}
