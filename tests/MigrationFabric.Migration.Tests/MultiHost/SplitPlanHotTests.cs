using MigrationFabric.Memory.Balancing;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Tracking;
using MigrationFabric.Memory.Workloads;
using MigrationFabric.Migration.MultiHost;
using MigrationFabric.Migration.RemotePaging;
using MigrationFabric.Migration.Strategies;
using MigrationFabric.Migration.Tests.Support;

namespace MigrationFabric.Migration.Tests.MultiHost;

/// <summary>Split's hot/cold plan with a demand monitor taking the access bits it samples: the plan reads what the monitor saw too.</summary>
public class SplitPlanHotTests
{
    private static readonly Uri A = new("http://127.0.0.1:5001");

    /// <summary>16 MiB, every page written, the access bits harvested, then pages [1000, 2000) touched: the working set.</summary>
    private static (GuestMemory Memory, SoftwareMmu Mmu) HotVm()
    {
        var memory = new GuestMemory(16 << 20);
        var mmu = new SoftwareMmu(memory);
        var page = new byte[Page.Size];
        using (var cpu = mmu.CreateVcpu())
            for (long p = 0; p < memory.PageCount; p++)
            {
                page[0] = (byte)p;
                cpu.Write(p << Page.Shift, page);
            }
        memory.Accessed.ClearAll();
        using (var cpu = mmu.CreateVcpu())
            for (long p = 1000; p < 2000; p++) cpu.Read(p << Page.Shift, new byte[8]);
        return (memory, mmu);
    }

    [Fact]
    public void A_hot_working_set_goes_to_the_main_even_after_the_demand_monitor_took_its_sampled_bits()
    {
        var (memory, mmu) = HotVm();
        using var _ = memory;
        using var __ = mmu;
        using var monitor = new DemandMonitor(memory.Accessed, new DemandMonitorOptions { SampleEvery = 8 });
        monitor.SampleOnce();
        long taken = 0;
        for (long p = 1000; p < 2000; p++)
            if (!memory.Accessed.IsSet(p)) taken++;
        Assert.True(taken > 50, $"the monitor took the bits of {taken} working-set pages");

        // The access bits alone: the pages whose bits the monitor took look cold, and colder pages take their place at the main.
        var blind = SplitPlan.Create(memory, 1000, [A]);
        long misplaced = 0;
        for (long p = 1000; p < 2000; p++)
            if (blind.HostOf(p) != MemoryMap.Main) misplaced++;
        Assert.Equal(taken, misplaced);

        // With what the monitor saw: the whole working set at the main, exactly its budget, the rest on the sub-host.
        var plan = SplitPlan.Create(memory, 1000, [A], recentAccess: monitor.RecentAccess);
        for (long p = 1000; p < 2000; p++) Assert.Equal(MemoryMap.Main, plan.HostOf(p));
        Assert.Equal(1000, plan.MainPages);
        Assert.Equal(memory.PageCount - 1000, plan.SubPages);
    }

    [Fact]
    public async Task With_a_hot_window_a_split_puts_the_working_set_on_the_main_while_the_monitor_samples_it()
    {
        const long hotFirst = 3000, hotPages = 256;
        await using var main = await Agent.StartAsync();
        await using var sub = await Agent.StartAsync();
        using var vm = new TestVm(16 << 20);
        using var target = new TestVm(16 << 20);
        using var subMemory = new GuestMemory(16 << 20);
        var subIncoming = SplitSubHost.Accept(sub.Pages, "hot-1", "vm-1", subMemory);
        using var mainHost = new SplitMainHost("hot-1", "vm-1", target.Memory, target.Mmu, sub.Address, new RemotePagerOptions { BudgetPages = hotPages + 64, PageOutBatch = 64 });
        main.Pages.Accept(mainHost.Incoming);
        // Every page written (so every access bit set), then only the working set at the end of memory is touched, as fast as it goes.
        vm.Fill(stride: 1);
        await using var monitor = new DemandMonitor(vm.Memory.Accessed, new DemandMonitorOptions { SampleEvery = 4, SamplingInterval = TimeSpan.FromMilliseconds(10) });
        monitor.Start();
        vm.Start(new HotSetWorkload(new HotSetOptions { WorkingSetFraction = (double)hotPages / 4096, TargetDirtyPagesPerSecond = 0, StartPage = hotFirst }));
        await vm.WaitForProgressAsync(10_000, TimeSpan.FromSeconds(60));
        // The bits as found say every page is hot: page order would fill the main with the first pages.
        var asFound = SplitPlan.Create(vm.Memory, hotPages, [sub.Address], recentAccess: monitor.RecentAccess);
        Assert.NotEqual(MemoryMap.Main, asFound.HostOf(hotFirst + hotPages - 1));

        await new Split(new SplitOptions { SubHosts = [sub.Address], MainBudgetPages = hotPages, HotWindow = TimeSpan.FromMilliseconds(500), RecentAccess = monitor.RecentAccess })
            .RunAsync(new MigrationJob { MigrationId = "hot-1", Vm = "vm-1", Memory = vm.Memory, Mmu = vm.Mmu, Destination = main.Address })
            .WaitAsync(TimeSpan.FromSeconds(60));
        await subIncoming.Completion.WaitAsync(TimeSpan.FromSeconds(60));
        await vm.StopWorkloadAsync();

        var map = mainHost.Pager.Map;
        for (long p = hotFirst; p < hotFirst + hotPages; p++) Assert.Equal(MemoryMap.Main, map.HostOf(p));
        Assert.Equal(4096 - hotPages, map.PagesOn(1));
    }

    [Fact]
    public void A_hot_window_out_of_range_is_refused_by_name()
    {
        var o = new SplitOptions { SubHosts = [A], MainBudgetPages = 10, HotWindow = TimeSpan.FromMilliseconds(-1) };
        Assert.Contains("HotWindow", Assert.Throws<ArgumentException>(o.Validate).Message);
        o.HotWindow = TimeSpan.FromMinutes(2);
        Assert.Contains("HotWindow", Assert.Throws<ArgumentException>(o.Validate).Message);
    }

    [Fact]
    public void A_recent_access_bitmap_of_another_size_is_refused_by_name()
    {
        var (memory, mmu) = HotVm();
        using var _ = memory;
        using var __ = mmu;
        var e = Assert.Throws<ArgumentException>(() => SplitPlan.Create(memory, 1000, [A], recentAccess: new AtomicPageBitmap(10)));
        Assert.Equal("recentAccess", e.ParamName);
        Assert.Contains("4096", e.Message);
    }
}
