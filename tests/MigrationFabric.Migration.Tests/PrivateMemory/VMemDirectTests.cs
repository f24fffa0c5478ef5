using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Swap;
using MigrationFabric.Memory.Workloads;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.Strategies;
using MigrationFabric.Migration.Tests.MultiHost;
using MigrationFabric.Migration.Tests.Support;

namespace MigrationFabric.Migration.Tests.PrivateMemory;

public class VMemDirectTests
{
    private const long Mib = 1 << 20;
    private const long VmBytes = 32 * Mib;
    private const long SharePages = 2048; // 8 MiB: a quarter of the VM
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(60);
    private static int s_next;

    private static MigrationJob Job(Agent source, TestVm vm, Uri destination, string id) => new()
    {
        MigrationId = id, Vm = "vm-1", Memory = vm.Memory, Mmu = vm.Mmu, Destination = destination,
        LocalPages = source.Pages, LocalAddress = source.Address,
    };

    private static string NextId() => $"vmem-{Interlocked.Increment(ref s_next)}";

    [Theory]
    [InlineData(PagingMode.AsyncMethod1)]
    [InlineData(PagingMode.AsyncMethod2)]
    public async Task Vm_larger_than_the_budget_moves_with_pages_placed_directly_and_no_paging(PagingMode mode)
    {
        await using var source = await Agent.StartAsync();
        using var vm = new TestVm(VmBytes);
        vm.Fill(stride: 1);
        await using var host = await SmallHost.StartAsync(VmBytes, SharePages, mode);
        string id = NextId();
        var incoming = host.Agent.Pages.Accept(host.Destination.Incoming(id, "vm-1"));

        var report = await new VMemDirect().RunAsync(Job(source, vm, host.Agent.Address, id)).WaitAsync(Long);

        await incoming.Completion.WaitAsync(Long);
        Assert.Equal("vmem-direct", report.Strategy);
        Assert.Equal(vm.Memory.PageCount, report.PagesVerified);
        var stats = host.Pager.Statistics.Snapshot();
        Assert.Equal(0, stats.PageIns);
        Assert.Equal(0, stats.PageOuts);
        Assert.True(stats.PlacedInSwap > 0, $"pages placed in swap: {stats.PlacedInSwap}");
        Assert.Equal(vm.Memory.PageCount, stats.PlacedInMemory + stats.PlacedInSwap);
        Assert.True(host.Memory.ResidentPages <= SharePages, $"resident {host.Memory.ResidentPages} > share {SharePages}");
        Assert.Equal(stats.PlacedInSwap, host.Memory.CountOf(PageResidency.Swapped));
        Assert.Equal(vm.Digest(), host.Digest());
    }

    [Fact]
    public async Task A_preallocated_share_takes_the_first_copies_bound_for_memory_on_its_own_frames()
    {
        await using var source = await Agent.StartAsync();
        using var vm = new TestVm(VmBytes);
        vm.Fill(stride: 1);
        await using var host = await SmallHost.StartAsync(VmBytes, SharePages, PagingMode.AsyncMethod1);
        string id = NextId();
        var incoming = host.Agent.Pages.Accept(host.Destination.Incoming(id, "vm-1"));
        var placement = host.Destination.Placement;

        bool preallocated = await incoming.PreallocateAsync(CancellationToken.None);
        if (!preallocated) { Console.Error.WriteLine("SKIPPED: this kernel cannot populate memory (MADV_POPULATE_WRITE, Linux >= 5.14)"); return; }
        Assert.Equal(SharePages - host.Pager.FreeReservePages, placement.ShareFramesPreallocated);
        Assert.False(incoming.IsPreallocated, "the VM's own pages are not all in RAM");
        Assert.Equal(0, host.Memory.ResidentPages);

        var report = await new VMemDirect().RunAsync(Job(source, vm, host.Agent.Address, id)).WaitAsync(Long);

        await incoming.Completion.WaitAsync(Long);
        Assert.Equal(vm.Memory.PageCount, report.PagesVerified);
        var stats = host.Pager.Statistics.Snapshot();
        Assert.Equal((0L, 0L), (stats.PageIns, stats.PageOuts));
        Assert.Equal(stats.PlacedInMemory, placement.PlacedOnShareFrames);
        Assert.Equal(placement.ShareFramesPreallocated, placement.PlacedOnShareFrames);
        Assert.Null(placement.ShareFramesRefusal);
        Assert.Equal(vm.Digest(), host.Digest());
    }

    [Fact]
    public async Task Share_frames_no_page_took_are_given_back_when_the_migration_ends()
    {
        await using var host = await SmallHost.StartAsync(VmBytes, SharePages, PagingMode.AsyncMethod1);
        var incoming = host.Agent.Pages.Accept(host.Destination.Incoming(NextId(), "vm-1"));
        var placement = host.Destination.Placement;
        if (!await incoming.PreallocateAsync(CancellationToken.None)) { Console.Error.WriteLine("SKIPPED: this kernel cannot populate memory (MADV_POPULATE_WRITE, Linux >= 5.14)"); return; }
        Assert.Equal(placement.ShareFramesPreallocated, placement.ShareFramesLeft);

        Assert.True(incoming.Abort("the source gave up"));

        var deadline = DateTime.UtcNow + Long;
        while (placement.ShareFramesLeft != 0 && DateTime.UtcNow < deadline) await Task.Delay(10);
        Assert.Equal(0, placement.ShareFramesLeft);
        Assert.True(placement.ShareFramesPreallocated > 0);
    }

    [Fact]
    public async Task The_naive_baseline_preallocates_nothing_plain_swap_holds_no_fixed_share()
    {
        await using var host = await SmallHost.StartAsync(VmBytes, SharePages, PagingMode.Naive);
        var incoming = host.Agent.Pages.Accept(host.Destination.Incoming(NextId(), "vm-1"));
        Assert.False(await incoming.PreallocateAsync(CancellationToken.None));
        Assert.Equal(0, host.Destination.Placement.ShareFramesPreallocated);
        incoming.Abort("test over");
    }

    [Fact]
    public async Task Retransfers_of_a_running_vm_update_memory_and_swap_in_place()
    {
        await using var source = await Agent.StartAsync();
        using var vm = new TestVm(VmBytes);
        vm.Fill(stride: 1);
        // The hot set covers the whole VM thinly so dirty pages land both in the share and in swap.
        vm.Start(new HotSetWorkload(new HotSetOptions { WorkingSetFraction = 1.0, TargetDirtyPagesPerSecond = 20_000 }));
        await vm.WaitForProgressAsync(2_000, Long);
        await using var host = await SmallHost.StartAsync(VmBytes, SharePages, PagingMode.AsyncMethod1);
        string id = NextId();
        var incoming = host.Agent.Pages.Accept(host.Destination.Incoming(id, "vm-1"));

        var report = await new VMemDirect(new VMemDirectOptions { BandwidthCap = 64 * Mib, MaxRounds = 4 })
            .RunAsync(Job(source, vm, host.Agent.Address, id)).WaitAsync(Long);

        await incoming.Completion.WaitAsync(Long);
        var stats = host.Pager.Statistics.Snapshot();
        Assert.True(report.PagesSent > vm.Memory.PageCount, "dirty pages were sent again");
        Assert.True(stats.UpdatedInSwap > 0, $"retransfers updated in swap: {stats.UpdatedInSwap}");
        Assert.True(stats.UpdatedInMemory > 0, $"retransfers updated in memory: {stats.UpdatedInMemory}");
        Assert.Equal(0, stats.PageIns);
        Assert.Equal(0, stats.PageOuts);
        Assert.Equal(vm.Digest(), host.Digest());
        await vm.StopWorkloadAsync();
    }

    [Fact]
    public async Task Migrated_vm_runs_at_the_destination_paging_within_its_share()
    {
        await using var source = await Agent.StartAsync();
        using var vm = new TestVm(VmBytes);
        vm.Fill(stride: 1);
        await using var host = await SmallHost.StartAsync(VmBytes, SharePages, PagingMode.AsyncMethod2);
        string id = NextId();
        var incoming = host.Agent.Pages.Accept(host.Destination.Incoming(id, "vm-1"));
        await new VMemDirect().RunAsync(Job(source, vm, host.Agent.Address, id)).WaitAsync(Long);
        await incoming.Completion.WaitAsync(Long);

        // A memory benchmark sweeps the whole VM: every swapped page faults in, others go out.
        var bench = new MemoryBenchmarkWorkload(new MemoryBenchmarkOptions());
        using var stop = new CancellationTokenSource();
        var running = bench.RunAsync(host.Destination.Mmu, stop.Token);
        var deadline = DateTime.UtcNow + Long;
        while (bench.Sweeps < 2 && DateTime.UtcNow < deadline && !running.IsCompleted) await Task.Delay(20);
        stop.Cancel();
        await WorkloadStop.WaitAsync(running, stop);
        await host.Pager.SettleAsync().WaitAsync(Long);

        Assert.True(bench.Sweeps >= 2, $"sweeps: {bench.Sweeps}");
        var stats = host.Pager.Statistics.Snapshot();
        Assert.True(stats.PageIns > 0 && stats.PageOuts > 0, $"page-ins {stats.PageIns}, page-outs {stats.PageOuts}");
        Assert.True(host.Memory.ResidentPages <= SharePages, $"resident {host.Memory.ResidentPages} > share {SharePages}");
        Assert.Null(host.Pager.LastBackgroundError);
    }

    [Fact]
    public async Task Naive_swap_baseline_pages_during_migration_and_still_arrives_intact()
    {
        await using var source = await Agent.StartAsync();
        using var vm = new TestVm(VmBytes);
        vm.Fill(stride: 1);
        vm.Start(new HotSetWorkload(new HotSetOptions { WorkingSetFraction = 1.0, TargetDirtyPagesPerSecond = 20_000 }));
        await vm.WaitForProgressAsync(2_000, Long);
        await using var host = await SmallHost.StartAsync(VmBytes, SharePages, PagingMode.Naive);
        string id = NextId();
        var incoming = host.Agent.Pages.Accept(host.Destination.Incoming(id, "vm-1"));

        var report = await new VMemDirect(new VMemDirectOptions { Kind = VirtualizationKind.NaiveSwap, BandwidthCap = 64 * Mib, MaxRounds = 4 })
            .RunAsync(Job(source, vm, host.Agent.Address, id)).WaitAsync(Long);

        await incoming.Completion.WaitAsync(Long);
        Assert.Equal("naive-swap", report.Strategy);
        var stats = host.Pager.Statistics.Snapshot();
        Assert.True(stats.PageOuts > 0, $"naive swap pages out when full: {stats.PageOuts}");
        Assert.True(stats.PageIns > 0, $"naive swap pages in to apply retransfers: {stats.PageIns}");
        Assert.Equal(vm.Digest(), host.Digest());
        await vm.StopWorkloadAsync();
    }

    [Fact]
    public async Task Ideal_baseline_moves_into_a_destination_with_room_for_the_whole_vm()
    {
        await using var pair = await MigrationPair.CreateAsync(VmBytes);
        pair.Vm.Fill(stride: 1);
        var incoming = pair.Accept();

        var report = await new VMemDirect(new VMemDirectOptions { Kind = VirtualizationKind.Ideal }).RunAsync(pair.Job()).WaitAsync(Long);

        await incoming.Completion.WaitAsync(Long);
        Assert.Equal("ideal", report.Strategy);
        Assert.Equal(pair.Vm.Memory.PageCount, pair.Target.Memory.CountOf(PageResidency.Resident));
        Assert.Equal(pair.Vm.Digest(), pair.Target.Digest());
    }

    [Fact]
    public void A_share_outside_the_vm_is_refused_naming_the_share()
    {
        using var memory = new Memory.Guest.GuestMemory(4 * Mib);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new Migration.PrivateMemory.PrivateMemoryDestination(memory, 0, PagingMode.AsyncMethod1));
        Assert.Contains("share", e.Message);
    }
}
