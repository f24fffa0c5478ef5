using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Swap;
using MigrationFabric.Memory.Workloads;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.PrivateMemory;
using MigrationFabric.Migration.Strategies;
using MigrationFabric.Migration.Tests.MultiHost;
using MigrationFabric.Migration.Tests.Support;

namespace MigrationFabric.Migration.Tests.PrivateMemory;

public class DevirtualizeTests
{
    private const long Mib = 1 << 20;
    private const long VmBytes = 32 * Mib;
    private const long SharePages = 2048;
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(60);
    private static int s_next;

    private static string NextId() => $"devirt-{Interlocked.Increment(ref s_next)}";

    private static void Fill(SoftwareMmu mmu, long pages, int seed)
    {
        using var cpu = mmu.CreateVcpu();
        var page = new byte[Page.Size];
        var rng = new Random(seed);
        for (long p = 0; p < pages; p++)
        {
            rng.NextBytes(page.AsSpan(0, 64));
            BitConverter.TryWriteBytes(page.AsSpan(64), p);
            cpu.Write(p << Page.Shift, page);
        }
    }

    private static MigrationJob Job(SmallHost from, Uri to, string id) => new()
    {
        MigrationId = id, Vm = "vm-1", Memory = from.Memory, Mmu = from.Destination.Mmu, Destination = to,
        PageReader = new PrivateMemoryReader(from.Pager),
    };

    [Fact]
    public async Task Vm_in_private_memory_moves_to_a_large_host_reading_memory_and_swap_directly()
    {
        await using var small = await SmallHost.StartAsync(VmBytes, SharePages, PagingMode.AsyncMethod1);
        Fill(small.Destination.Mmu, small.Memory.PageCount, seed: 3);
        await small.Pager.SettleAsync().WaitAsync(Long);
        Assert.True(small.Memory.CountOf(PageResidency.Swapped) > small.Memory.PageCount / 2, "most of the VM is in swap before it moves");
        ulong digest = small.Digest();
        var before = small.Pager.Statistics.Snapshot();
        await using var large = await MigrationPair.CreateAsync(VmBytes);
        string id = NextId();
        var incoming = large.Destination.Pages.Accept(new IncomingMigration(id, "vm-1", large.Target.Memory, large.Target.Mmu));

        var report = await new VMemDirect(new VMemDirectOptions { Kind = VirtualizationKind.Devirtualize })
            .RunAsync(Job(small, large.Destination.Address, id)).WaitAsync(Long);

        await incoming.Completion.WaitAsync(Long);
        var after = small.Pager.Statistics.Snapshot();
        Assert.Equal("vmem-devirtualize", report.Strategy);
        Assert.Equal(small.Memory.PageCount, report.PagesVerified);
        Assert.True(after.ReadFromSwap - before.ReadFromSwap >= small.Memory.CountOf(PageResidency.Swapped), $"read from swap: {after.ReadFromSwap - before.ReadFromSwap}");
        Assert.True(after.ReadFromMemory > before.ReadFromMemory, "resident pages were read from the share");
        Assert.Equal(before.PageIns, after.PageIns);
        Assert.Equal(digest, large.Target.Digest());
        Assert.Equal(large.Target.Memory.PageCount, large.Target.Memory.CountOf(PageResidency.Resident));
    }

    [Fact]
    public async Task Round_trip_large_to_small_and_back_keeps_every_page_under_a_running_workload()
    {
        await using var first = await MigrationPair.CreateAsync(VmBytes);
        first.Vm.Fill(stride: 1);
        await using var small = await SmallHost.StartAsync(VmBytes, SharePages, PagingMode.AsyncMethod2);
        string id1 = NextId();
        var into = small.Agent.Pages.Accept(small.Destination.Incoming(id1, "vm-1"));
        var job1 = new MigrationJob { MigrationId = id1, Vm = "vm-1", Memory = first.Vm.Memory, Mmu = first.Vm.Mmu, Destination = small.Agent.Address };
        await new VMemDirect().RunAsync(job1).WaitAsync(Long);
        await into.Completion.WaitAsync(Long);
        Assert.Equal(first.Vm.Digest(), small.Digest());

        // The VM runs in the small host's private memory (faulting pages in and out of swap) while it moves back.
        var workload = new HotSetWorkload(new HotSetOptions { WorkingSetFraction = 1.0, TargetDirtyPagesPerSecond = 20_000 });
        using var stop = new CancellationTokenSource();
        var running = workload.RunAsync(small.Destination.Mmu, stop.Token);
        var deadline = DateTime.UtcNow + Long;
        while (workload.TotalOperations < 2_000 && DateTime.UtcNow < deadline && !running.IsCompleted) await Task.Delay(20);
        string id2 = NextId();
        var back = first.Source.Pages.Accept(new IncomingMigration(id2, "vm-1", first.Target.Memory, first.Target.Mmu));

        var report = await new VMemDirect(new VMemDirectOptions { Kind = VirtualizationKind.Devirtualize, BandwidthCap = 64 * Mib, MaxRounds = 4 })
            .RunAsync(Job(small, first.Source.Address, id2)).WaitAsync(Long);

        await back.Completion.WaitAsync(Long);
        Assert.True(small.Destination.Mmu.IsPaused);
        stop.Cancel();
        await WorkloadStop.WaitAsync(running, stop);
        Assert.True(report.PagesSent > small.Memory.PageCount, "pages dirtied in private memory were sent again");
        Assert.True(small.Pager.Statistics.Snapshot().ReadFromSwap > 0);
        Assert.Equal(small.Digest(), first.Target.Digest());
    }

    [Fact]
    public async Task Devirtualizing_without_a_page_reader_fails_before_switch_over_naming_it()
    {
        await using var small = await SmallHost.StartAsync(16 * Mib, 1024, PagingMode.AsyncMethod1);
        Fill(small.Destination.Mmu, small.Memory.PageCount, seed: 5);
        await using var large = await MigrationPair.CreateAsync(16 * Mib);
        string id = NextId();
        var incoming = large.Destination.Pages.Accept(new IncomingMigration(id, "vm-1", large.Target.Memory, large.Target.Mmu));
        var job = new MigrationJob { MigrationId = id, Vm = "vm-1", Memory = small.Memory, Mmu = small.Destination.Mmu, Destination = large.Destination.Address };

        var e = await Assert.ThrowsAsync<MigrationFailedException>(() => new VMemDirect(new VMemDirectOptions { Kind = VirtualizationKind.Devirtualize }).RunAsync(job).WaitAsync(Long));

        Assert.Contains("PageReader", e.Message);
        Assert.False(small.Destination.Mmu.IsPaused, "the VM keeps running at the source");
        await Assert.ThrowsAsync<MigrationAbortedException>(() => incoming.Completion.WaitAsync(Long));
    }
}
