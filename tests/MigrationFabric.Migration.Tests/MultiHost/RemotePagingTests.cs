using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Integrity;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Workloads;
using MigrationFabric.Migration.RemotePaging;
using MigrationFabric.Migration.Tests.Support;

namespace MigrationFabric.Migration.Tests.MultiHost;

/// <summary>A split VM after switch-over: the main host holds its budget, the sub-host the rest; faults page in from it and page out to it.</summary>
public class RemotePagingTests
{
    private const long Mib = 1 << 20;
    private const long VmBytes = 16 * Mib; // 4096 pages
    private const long Budget = 1024;
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(60);

    private sealed class SplitVm : IAsyncDisposable
    {
        public required Agent Sub { get; init; }
        public required GuestMemory Main { get; init; }
        public required GuestMemory SubMemory { get; init; }
        public required RemotePageStore Store { get; init; }
        public required RemotePager Pager { get; init; }
        public required SoftwareMmu Mmu { get; init; }
        public required byte[][] Original { get; init; }

        /// <summary>The VM's digest across both hosts: a page at the main where it is resident, else the sub-host's copy.</summary>
        public ulong Digest()
        {
            var vm = new Xxh64(0);
            for (long p = 0; p < Main.PageCount; p++)
                vm.AppendUInt64(Main.GetResidency(p) == PageResidency.Remote ? PageDigest.Of(SubMemory, p) : PageDigest.Of(Main, p));
            return vm.Digest();
        }

        public async ValueTask DisposeAsync()
        {
            Mmu.Dispose();
            Pager.Dispose();
            Main.Dispose();
            SubMemory.Dispose();
            await Sub.DisposeAsync();
        }
    }

    private static async Task<SplitVm> CreateAsync()
    {
        var sub = await Agent.StartAsync();
        var main = new GuestMemory(VmBytes);
        var subMemory = new GuestMemory(VmBytes);
        var original = new byte[main.PageCount][];
        var rng = new Random(11);
        for (long p = 0; p < main.PageCount; p++)
        {
            var bytes = new byte[Page.Size];
            rng.NextBytes(bytes.AsSpan(0, 128));
            BitConverter.TryWriteBytes(bytes.AsSpan(128), p);
            original[p] = bytes;
            // The planner's split: the first Budget pages at the main, the rest held by the sub-host only.
            if (p < Budget) Assert.True(main.TryInstall(p, PageResidency.Zero, bytes));
            else
            {
                Assert.True(subMemory.TryInstall(p, PageResidency.Zero, bytes));
                Assert.True(main.TryTransition(p, PageResidency.Zero, PageResidency.Remote));
            }
        }
        var store = sub.Pages.Hold(new RemotePageStore("vm-1", subMemory));
        var pager = new RemotePager("vm-1", main, sub.Address, new RemotePagerOptions { BudgetPages = Budget, Timeout = TimeSpan.FromSeconds(10) });
        return new SplitVm { Sub = sub, Main = main, SubMemory = subMemory, Store = store, Pager = pager, Mmu = new SoftwareMmu(main, pager), Original = original };
    }

    [Fact]
    public async Task Every_page_reads_back_through_remote_page_ins_and_outs_within_the_budget()
    {
        await using var vm = await CreateAsync();
        ulong before = vm.Digest();

        await VcpuThread.Start(() =>
        {
            using var cpu = vm.Mmu.CreateVcpu();
            var buffer = new byte[Page.Size];
            for (long p = vm.Main.PageCount - 1; p >= 0; p--)
            {
                cpu.Read(p << Page.Shift, buffer);
                Assert.True(buffer.AsSpan().SequenceEqual(vm.Original[p]), $"page {p} differs after remote paging");
            }
        }).WaitAsync(Long);

        Assert.True(vm.Pager.PageIns >= vm.Main.PageCount - Budget, $"page-ins {vm.Pager.PageIns}");
        Assert.True(vm.Pager.PageOuts > 0, $"page-outs {vm.Pager.PageOuts}");
        Assert.True(vm.Main.ResidentPages <= Budget, $"resident {vm.Main.ResidentPages} > budget {Budget}");
        Assert.Equal(vm.Pager.PageOuts, vm.Store.PagesStored);
        Assert.Equal(before, vm.Digest());
    }

    [Fact]
    public async Task A_running_workload_pages_in_and_out_and_the_vm_stays_whole()
    {
        await using var vm = await CreateAsync();
        var workload = new HotSetWorkload(new HotSetOptions { WorkingSetFraction = 1.0, TargetDirtyPagesPerSecond = 20_000, Vcpus = 2 });
        using var stop = new CancellationTokenSource();
        var running = workload.RunAsync(vm.Mmu, stop.Token);
        var deadline = DateTime.UtcNow + Long;
        while ((vm.Pager.PageOuts < 2 * Budget || workload.TotalOperations < 5_000) && DateTime.UtcNow < deadline && !running.IsCompleted) await Task.Delay(20);
        stop.Cancel();
        await WorkloadStop.WaitAsync(running, stop);

        Assert.True(vm.Pager.PageOuts >= 2 * Budget, $"page-outs {vm.Pager.PageOuts}");
        Assert.True(vm.Main.ResidentPages <= Budget, $"resident {vm.Main.ResidentPages} > budget {Budget}");
        Assert.False(vm.Pager.Lost.IsCompleted);
        // Reading every page back (more paging) must not change the VM the two hosts hold together.
        ulong written = vm.Digest();
        await VcpuThread.Start(() =>
        {
            using var cpu = vm.Mmu.CreateVcpu();
            var buffer = new byte[Page.Size];
            for (long p = 0; p < vm.Main.PageCount; p++) cpu.Read(p << Page.Shift, buffer);
        }).WaitAsync(Long);
        Assert.Equal(written, vm.Digest());
    }

    [Fact]
    public async Task A_killed_sub_host_is_reported_with_the_pages_lost_and_stops_the_faulting_vcpu()
    {
        await using var vm = await CreateAsync();
        await vm.Sub.KillAsync();

        var e = await Assert.ThrowsAnyAsync<Exception>(() => VcpuThread.Start(() =>
        {
            using var cpu = vm.Mmu.CreateVcpu();
            var buffer = new byte[Page.Size];
            cpu.Read(Budget << Page.Shift, buffer);
        }).WaitAsync(Long));

        var lost = await vm.Pager.Lost.WaitAsync(Long);
        Assert.Equal(vm.Main.PageCount - Budget, lost.PagesLost);
        Assert.Contains("lost", e.ToString());
        Assert.Equal(vm.Sub.Address, lost.SubHost);
    }

    [Fact]
    public async Task Store_and_fetch_for_a_vm_not_held_here_are_refused_by_name()
    {
        await using var sub = await Agent.StartAsync();
        using var channel = new Rpc.Client.RpcChannel(sub.Address, new Rpc.Client.RpcChannelOptions());
        var e = await Assert.ThrowsAsync<Rpc.RpcException>(() => channel.AsyncUnaryCall(Migration.DataPlane.PagesContract.StorePages,
            new Contracts.V1.StorePagesRequest { Vm = "nope" }, new Rpc.CallOptions()).ResponseAsync);
        Assert.Equal(Rpc.StatusCode.NotFound, e.StatusCode);
        Assert.Contains("nope", e.Status.Detail);
    }

    [Fact]
    public async Task A_corrupt_page_out_is_refused_with_data_loss_naming_the_page_and_nothing_is_stored()
    {
        await using var sub = await Agent.StartAsync();
        using var held = new GuestMemory(4 * Mib);
        var store = sub.Pages.Hold(new RemotePageStore("vm-c", held));
        var builder = new Migration.Codec.PageBatchBuilder(1);
        var bytes = new byte[Page.Size];
        bytes[5] = 9;
        builder.AddPage(77, bytes);
        using var encoded = builder.Build(0);
        var batch = encoded.Batch.Clone();
        batch.Checksums[0] ^= 1;
        using var channel = new Rpc.Client.RpcChannel(sub.Address, new Rpc.Client.RpcChannelOptions());

        var e = await Assert.ThrowsAsync<Rpc.RpcException>(() => channel.AsyncUnaryCall(Migration.DataPlane.PagesContract.StorePages,
            new Contracts.V1.StorePagesRequest { Vm = "vm-c", Batch = batch }, new Rpc.CallOptions()).ResponseAsync);

        Assert.Equal(Rpc.StatusCode.DataLoss, e.StatusCode);
        Assert.Contains("77", e.Status.Detail);
        Assert.Equal(0, store.PagesStored);
        Assert.Equal(PageResidency.Zero, held.GetResidency(77));
    }

    [Fact]
    public void Remote_pager_options_name_the_bad_option()
    {
        using var memory = new GuestMemory(4 * Mib);
        var e = Assert.Throws<ArgumentException>(() => new RemotePager("vm", memory, new Uri("http://127.0.0.1:1"), new RemotePagerOptions()));
        Assert.Contains("BudgetPages", e.Message);
        e = Assert.Throws<ArgumentException>(() => new RemotePager("vm", memory, new Uri("http://127.0.0.1:1"), new RemotePagerOptions { BudgetPages = 32, PageOutBatch = 64 }));
        Assert.Contains("PageOutBatch", e.Message);
    }
}
