using Google.Protobuf;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Migration.Codec;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.Tests.Support;
using MigrationFabric.Rpc;
using MigrationFabric.Rpc.Client;
using MigrationFabric.Rpc.Server;

namespace MigrationFabric.Migration.Tests.Strategies;

/// <summary>Post-copy's fault priority at the destination: background-push batches wait while a remote fault is out.</summary>
public class FaultPriorityTests
{
    private const long Mib = 1 << 20;
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_push_batch_is_applied_only_once_the_outstanding_remote_fault_is_answered()
    {
        await using var rig = await Rig.StartAsync(new IncomingMigrationOptions { FaultPriorityHold = TimeSpan.FromMinutes(1) });
        var vcpu = rig.TouchAtDestination(page: 0);
        await rig.SourceAsked.Task.WaitAsync(Long);

        var flush = rig.PushAsync(page: 300);
        // The fault is held at the source: the pushed page must not land meanwhile (a wrong implementation lands it
        // within milliseconds; a right one never does while the fault is out, so this wait cannot fail it).
        await Task.WhenAny(flush, Task.Delay(300));
        Assert.False(flush.IsCompleted, "the push batch was applied while a remote fault was out");
        Assert.Equal(PageResidency.Remote, rig.Memory.GetResidency(300));

        rig.ReleaseSource.SetResult();
        await vcpu.WaitAsync(Long);
        await flush.WaitAsync(Long);
        Assert.Equal(PageResidency.Resident, rig.Memory.GetResidency(0));
        Assert.Equal(PageResidency.Resident, rig.Memory.GetResidency(300));
        Assert.Equal(Rig.Stamp(300), ReadStamp(rig.Memory, 300));
        Assert.Equal(1, rig.Incoming.RemoteFaultSteps.Total.Count);
        Assert.Equal(1, rig.Incoming.RemoteFaultSteps.Install.Count);
        Assert.Equal(0, rig.Incoming.RemoteFaultSteps.Request.Count); // the stand-in source sends no server times: left out
    }

    [Fact]
    public async Task With_no_hold_the_push_lands_while_a_fault_is_out()
    {
        await using var rig = await Rig.StartAsync(new IncomingMigrationOptions { FaultPriorityHold = TimeSpan.Zero });
        var vcpu = rig.TouchAtDestination(page: 0);
        await rig.SourceAsked.Task.WaitAsync(Long);

        await rig.PushAsync(page: 300).WaitAsync(Long);

        Assert.Equal(PageResidency.Resident, rig.Memory.GetResidency(300));
        Assert.False(vcpu.IsCompleted);
        rig.ReleaseSource.SetResult();
        await vcpu.WaitAsync(Long);
    }

    [Fact]
    public async Task A_page_the_guest_wrote_after_its_fault_keeps_the_guests_bytes_when_the_push_brings_the_source_copy()
    {
        await using var rig = await Rig.StartAsync(new IncomingMigrationOptions { FaultPriorityHold = TimeSpan.Zero });
        rig.ReleaseSource.SetResult();
        const ulong GuestValue = 0xBEEF_0000_0000_0005UL;
        await VcpuThread.Start(() =>
        {
            using var cpu = rig.Mmu.CreateVcpu();
            cpu.WriteUInt64(5L << Page.Shift, GuestValue); // a remote fault installs page 5, then the guest overwrites it
        }).WaitAsync(Long);

        // The push's batches are populated before install (one madvise per run of still-Remote pages): page 5 is resident
        // and must be neither populated nor installed over; page 6, still remote, is installed from the push.
        await rig.PushAsync(page: 5).WaitAsync(Long);
        await rig.PushAsync(page: 6).WaitAsync(Long);

        Assert.Equal(GuestValue, ReadStamp(rig.Memory, 5));
        Assert.Equal(Rig.Stamp(6), ReadStamp(rig.Memory, 6));
        Assert.Equal(PageResidency.Resident, rig.Memory.GetResidency(6));
        Assert.Equal(PageResidency.Remote, rig.Memory.GetResidency(7));
    }

    [Fact]
    public void A_negative_fault_priority_hold_is_refused_by_name()
    {
        using var memory = new GuestMemory(Mib);
        using var mmu = new SoftwareMmu(memory);
        var bad = Assert.Throws<ArgumentException>(() => new IncomingMigration("m", "vm", memory, mmu, new IncomingMigrationOptions { FaultPriorityHold = TimeSpan.FromMilliseconds(-1) }));
        Assert.Contains("FaultPriorityHold", bad.Message);
    }

    private static ulong ReadStamp(GuestMemory memory, long page) => BitConverter.ToUInt64(memory.GetPageBytes(page));

    /// <summary>A destination agent in post-copy whose source is a stand-in that holds every RemotePages reply until released.</summary>
    private sealed class Rig : IAsyncDisposable
    {
        private Agent _destination = null!;
        private RpcServer _source = null!;
        private RpcChannel _control = null!;
        private RpcChannel _stream = null!;
        private PageStreamGroup _group = null!;
        private GuestMemory _sourceMemory = null!;

        public GuestMemory Memory { get; private set; } = null!;
        public SoftwareMmu Mmu { get; private set; } = null!;
        public IncomingMigration Incoming { get; private set; } = null!;
        public TaskCompletionSource SourceAsked { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public TaskCompletionSource ReleaseSource { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public static ulong Stamp(long page) => 0xFACE0000UL + (ulong)page;

        public static async Task<Rig> StartAsync(IncomingMigrationOptions options)
        {
            var rig = new Rig();
            rig._sourceMemory = new GuestMemory(2 * Mib);
            using (var mmu = new SoftwareMmu(rig._sourceMemory))
            using (var cpu = mmu.CreateVcpu())
                for (long p = 0; p < rig._sourceMemory.PageCount; p++) cpu.WriteUInt64(p << Page.Shift, Stamp(p));
            rig._source = new RpcServer(new RpcServerOptions { Port = 0 });
            rig._source.AddService(RpcServiceDefinition.CreateBuilder(PagesContract.Service)
                .AddUnary<RemotePagesRequest, RemotePagesResponse>("RemotePages", rig.ServeAsync).Build());
            await rig._source.StartAsync();
            rig._destination = await Agent.StartAsync();
            rig.Memory = new GuestMemory(2 * Mib);
            rig.Mmu = new SoftwareMmu(rig.Memory);
            rig.Incoming = rig._destination.Pages.Accept(new IncomingMigration("m-prio", "vm", rig.Memory, rig.Mmu, options));
            rig._control = new RpcChannel(rig._destination.Address);
            rig._stream = new RpcChannel(rig._destination.Address);
            var open = new StreamOpen
            {
                MigrationId = "m-prio", Vm = "vm", TotalPages = (ulong)rig.Memory.PageCount, PageSize = Page.Size,
                Codec = new CodecOptions { Compression = Compression.None, Checksum = ChecksumKind.Xxh64 },
            };
            rig._group = await PageStreamGroup.OpenAsync([rig._stream], open, 1, PageCompression.None, null, CancellationToken.None);
            var bits = new byte[(rig.Memory.PageCount + 7) / 8];
            Array.Fill(bits, (byte)0xFF);
            var reply = await rig._control.AsyncUnaryCall(PagesContract.SwitchOver, new SwitchOverRequest
            {
                MigrationId = "m-prio", PendingPages = ByteString.CopyFrom(bits), PendingCount = (ulong)rig.Memory.PageCount,
                SourceAddress = rig._source.Address.ToString(),
            }, new CallOptions()).ResponseAsync;
            Assert.Equal((ulong)rig.Memory.PageCount, reply.PendingCount);
            return rig;
        }

        private async Task<RemotePagesResponse> ServeAsync(RemotePagesRequest request, ServerCallContext context)
        {
            SourceAsked.TrySetResult();
            await ReleaseSource.Task;
            var builder = new PageBatchBuilder(request.PageNumbers.Count);
            foreach (ulong p in request.PageNumbers) builder.AddPage((long)p, _sourceMemory.GetPageBytes((long)p), PageFlags.Urgent);
            return new RemotePagesResponse { Batch = builder.Build(0).Batch };
        }

        /// <summary>A destination vCPU reads <paramref name="page"/> on its own thread (a remote fault).</summary>
        public Task TouchAtDestination(long page) => VcpuThread.Start(() =>
        {
            using var cpu = Mmu.CreateVcpu();
            Assert.Equal(Stamp(page), cpu.ReadUInt64(page << Page.Shift));
        });

        /// <summary>Pushes <paramref name="page"/> on the page stream; completes once the destination applied it.</summary>
        public async Task PushAsync(long page)
        {
            await _group.AddAsync(_sourceMemory, page, 0);
            await _group.FlushAsync(0, CancellationToken.None);
        }

        public async ValueTask DisposeAsync()
        {
            ReleaseSource.TrySetResult();
            await _group.DisposeAsync();
            _control.Dispose();
            _stream.Dispose();
            await _destination.DisposeAsync();
            await _source.DisposeAsync();
            Mmu.Dispose();
            Memory.Dispose();
            _sourceMemory.Dispose();
        }
    }
}
