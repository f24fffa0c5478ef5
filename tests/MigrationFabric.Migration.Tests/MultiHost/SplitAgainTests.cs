using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Integrity;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Workloads;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.MultiHost;
using MigrationFabric.Migration.RemotePaging;
using MigrationFabric.Migration.Strategies;
using MigrationFabric.Migration.Tests.Support;

namespace MigrationFabric.Migration.Tests.MultiHost;

/// <summary>A split VM migrated again: pre-copy from its main reads each page where it lives (<see cref="SplitSourceReader"/>) while the guest pages in and out.</summary>
public class SplitAgainTests
{
    private const long Mib = 1 << 20;
    private const long VmBytes = 16 * Mib; // 4096 pages
    private const long MainBudget = 1024;
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(60);

    /// <summary>The VM as main and sub-host hold it together, read straight from both memories (not through the reader under test).</summary>
    private static ulong HeldDigest(GuestMemory main, GuestMemory sub, MemoryMap map)
    {
        var vm = new Xxh64(0);
        for (long p = 0; p < main.PageCount; p++)
        {
            var r = main.GetResidency(p);
            bool local = r is PageResidency.Resident or PageResidency.Evicting || map.HostOf(p) == MemoryMap.Main;
            vm.AppendUInt64(local ? PageDigest.Of(main, p, new ZeroReader()) : PageDigest.Of(sub, p));
        }
        return vm.Digest();
    }

    /// <summary>A main-owned Remote page was never written.</summary>
    private sealed class ZeroReader : IPageContentReader
    {
        public void ReadPage(PageNumber page, PageResidency residency, Span<byte> destination) => destination.Clear();
    }

    [Fact]
    public async Task Pre_copy_from_a_split_main_under_remote_paging_lands_every_page_as_main_and_sub_host_held_it()
    {
        await using var source = await Agent.StartAsync();
        await using var main = await Agent.StartAsync();
        await using var sub = await Agent.StartAsync();
        await using var final = await Agent.StartAsync();
        using var vm = new TestVm(VmBytes);
        using var target = new TestVm(VmBytes);
        using var subMemory = new GuestMemory(VmBytes);
        using var moved = new TestVm(VmBytes);
        var subIncoming = SplitSubHost.Accept(sub.Pages, "again-1", "vm-1", subMemory);
        using var mainHost = new SplitMainHost("again-1", "vm-1", target.Memory, target.Mmu, sub.Address,
            new RemotePagerOptions { BudgetPages = MainBudget + 64, PageOutBatch = 64, Timeout = TimeSpan.FromSeconds(10) });
        main.Pages.Accept(mainHost.Incoming);
        vm.Fill(stride: 1);
        await new Split(new SplitOptions { SubHosts = [sub.Address], MainBudgetPages = MainBudget })
            .RunAsync(new MigrationJob { MigrationId = "again-1", Vm = "vm-1", Memory = vm.Memory, Mmu = vm.Mmu, Destination = main.Address }).WaitAsync(Long);
        await subIncoming.Completion.WaitAsync(Long);
        Assert.True(subMemory.ResidentPages >= vm.Memory.PageCount - MainBudget - 64, $"sub-host holds {subMemory.ResidentPages}");

        // The guest runs at the main over all its memory, so pages go in and out while they are read.
        target.Start(new HotSetWorkload(new HotSetOptions { WorkingSetFraction = 1.0, TargetDirtyPagesPerSecond = 20_000 }));
        await target.WaitForProgressAsync(1_000, Long);
        long pageInsBefore = mainHost.Pager.PageIns;
        var incoming = final.Pages.Accept(new IncomingMigration("again-2", "vm-1", moved.Memory, moved.Mmu, new IncomingMigrationOptions()));
        using var reader = new SplitSourceReader("vm-1", target.Memory, mainHost.Pager);
        var report = await new PreCopy(new PreCopyOptions { MaxRounds = 3, AutoConverge = false })
            .RunAsync(new MigrationJob { MigrationId = "again-2", Vm = "vm-1", Memory = target.Memory, Mmu = target.Mmu, Destination = final.Address, PageReader = reader })
            .WaitAsync(Long);
        await incoming.Completion.WaitAsync(Long);

        Assert.Equal(vm.Memory.PageCount, report.PagesVerified);
        Assert.True(reader.PagesFetched > 0 && reader.Calls > 0, $"fetched {reader.PagesFetched} in {reader.Calls} calls");
        Assert.True(reader.PagesFetched >= reader.Calls, "each call brings at least the page asked for");
        Assert.True(mainHost.Pager.PageIns > pageInsBefore, "the guest paged in while it was migrated");
        // The main is paused since switch-over: what it and its sub-host hold is frozen, and the new host has exactly that.
        Assert.True(target.Mmu.IsPaused);
        Assert.Equal(HeldDigest(target.Memory, subMemory, mainHost.Pager.Map), PageDigest.OfMemory(moved.Memory));
        // The report's VM digest, awaited through the reader, is the blocking one's.
        Assert.Equal(PageDigest.OfMemory(moved.Memory), await MigrationFabric.Migration.Verification.VmDigest.OfMemoryAsync(target.Memory, reader).WaitAsync(Long));
        Assert.Equal(PageDigest.OfMemory(target.Memory, reader), await MigrationFabric.Migration.Verification.VmDigest.OfMemoryAsync(target.Memory, reader).WaitAsync(Long));
        for (long p = 0; p < moved.Memory.PageCount; p++)
            Assert.True(moved.Memory.GetResidency(p) is PageResidency.Resident or PageResidency.Zero, $"page {p} is {moved.Memory.GetResidency(p)} at the new host");
        await target.StopWorkloadAsync();
    }

    [Fact]
    public async Task A_sub_host_that_does_not_answer_fails_the_read_naming_it()
    {
        await using var source = await Agent.StartAsync();
        await using var main = await Agent.StartAsync();
        var sub = await Agent.StartAsync();
        using var vm = new TestVm(VmBytes);
        using var target = new TestVm(VmBytes);
        using var subMemory = new GuestMemory(VmBytes);
        var subIncoming = SplitSubHost.Accept(sub.Pages, "again-3", "vm-1", subMemory);
        using var mainHost = new SplitMainHost("again-3", "vm-1", target.Memory, target.Mmu, sub.Address,
            new RemotePagerOptions { BudgetPages = MainBudget + 64, PageOutBatch = 64, Timeout = TimeSpan.FromSeconds(5) });
        main.Pages.Accept(mainHost.Incoming);
        vm.Fill(stride: 1);
        await new Split(new SplitOptions { SubHosts = [sub.Address], MainBudgetPages = MainBudget })
            .RunAsync(new MigrationJob { MigrationId = "again-3", Vm = "vm-1", Memory = vm.Memory, Mmu = vm.Mmu, Destination = main.Address }).WaitAsync(Long);
        await subIncoming.Completion.WaitAsync(Long);
        long remote = -1;
        for (long p = 0; p < target.Memory.PageCount && remote < 0; p++)
            if (target.Memory.GetResidency(p) == PageResidency.Remote && mainHost.Pager.Map.HostOf(p) == 1) remote = p;
        Assert.True(remote >= 0, "some page lives only at the sub-host");
        await sub.DisposeAsync();

        using var reader = new SplitSourceReader("vm-1", target.Memory, mainHost.Pager, TimeSpan.FromSeconds(5));
        var buffer = new byte[Page.Size];
        var e = Assert.Throws<IOException>(() => reader.ReadPage(remote, PageResidency.Remote, buffer));
        Assert.Contains(sub.Address.Authority, e.Message);
        Assert.Contains($"page {remote}", e.Message);
        var awaited = await Assert.ThrowsAsync<IOException>(() => reader.ReadPageAsync(remote, PageResidency.Remote, buffer, CancellationToken.None).AsTask());
        Assert.Contains(sub.Address.Authority, awaited.Message);
        // Pages the main holds still read.
        long resident = -1;
        for (long p = 0; p < target.Memory.PageCount && resident < 0; p++)
            if (target.Memory.GetResidency(p) == PageResidency.Resident) resident = p;
        reader.ReadPage(resident, PageResidency.Resident, buffer);
        Assert.Equal(PageDigest.Of(target.Memory, resident), PageDigest.Of(buffer));
    }

    [Fact]
    public async Task An_awaited_read_waits_for_the_mains_paging_without_blocking_and_can_be_cancelled()
    {
        using var memory = new GuestMemory(VmBytes);
        using var pager = new RemotePager("vm-1", memory, new MemoryMap(memory.PageCount, [new Uri("http://127.0.0.1:1")]), new RemotePagerOptions { BudgetPages = 128 });
        using var reader = new SplitSourceReader("vm-1", memory, pager);
        var page = new byte[Page.Size];
        page[0] = 1;

        ValueTask read;
        using (pager.HoldPaging())
        {
            // A fault's paging holds the gate: the read is pending, not a blocked thread.
            read = reader.ReadPageAsync(0, PageResidency.Remote, page, CancellationToken.None);
            Assert.False(read.IsCompleted, "the read waits while paging is held");
        }
        await read.AsTask().WaitAsync(Long);
        Assert.All(page, b => Assert.Equal(0, b));

        using var cancel = new CancellationTokenSource();
        Task pending;
        using (pager.HoldPaging())
        {
            pending = reader.ReadPageAsync(1, PageResidency.Remote, page, cancel.Token).AsTask();
            await cancel.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => pending.WaitAsync(Long));
        }
        Assert.Contains("4096", (await Assert.ThrowsAsync<ArgumentException>(() => reader.ReadPageAsync(0, PageResidency.Remote, new byte[10], CancellationToken.None).AsTask())).Message);
        Assert.Equal(0, reader.Calls);
    }

    [Fact]
    public void Bad_arguments_are_refused_by_name()
    {
        using var memory = new GuestMemory(VmBytes);
        using var other = new GuestMemory(2 * VmBytes);
        using var pager = new RemotePager("vm-1", memory, new MemoryMap(memory.PageCount, [new Uri("http://127.0.0.1:1")]), new RemotePagerOptions { BudgetPages = 128 });
        Assert.Contains("covers", Assert.Throws<ArgumentException>(() => new SplitSourceReader("vm-1", other, pager)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new SplitSourceReader("vm-1", memory, pager, TimeSpan.Zero));
        Assert.Contains("runPages", Assert.Throws<ArgumentOutOfRangeException>(() => new SplitSourceReader("vm-1", memory, pager, runPages: 0)).Message);
        Assert.Contains("1..512", Assert.Throws<ArgumentOutOfRangeException>(() => new SplitSourceReader("vm-1", memory, pager, runPages: SplitSourceReader.MaxRunPages + 1)).Message);
        using var reader = new SplitSourceReader("vm-1", memory, pager);
        Assert.Contains("4096", Assert.Throws<ArgumentException>(() => reader.ReadPage(0, PageResidency.Remote, new byte[10])).Message);
        // A page the main owns and never wrote reads as zeroes, with no call.
        var page = new byte[Page.Size];
        page[0] = 1;
        reader.ReadPage(0, PageResidency.Remote, page);
        Assert.All(page, b => Assert.Equal(0, b));
        Assert.Equal(0, reader.Calls);
    }
}
