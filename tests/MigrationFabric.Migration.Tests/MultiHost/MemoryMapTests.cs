using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Migration.MultiHost;
using MigrationFabric.Migration.RemotePaging;
using MigrationFabric.Migration.Strategies;

namespace MigrationFabric.Migration.Tests.MultiHost;

/// <summary>The memory map's format and the split plan's dealing, without sockets.</summary>
public class MemoryMapTests
{
    private static readonly Uri A = new("http://10.0.0.1:7001"), B = new("http://10.0.0.2:7001"), C = new("http://10.0.0.3:7001");

    private static void AssertSame(MemoryMap expected, MemoryMap actual)
    {
        Assert.Equal(expected.PageCount, actual.PageCount);
        Assert.Equal(expected.SubHosts, actual.SubHosts);
        Assert.Equal(expected.Version, actual.Version);
        for (int h = 0; h <= expected.SubHosts.Count; h++) Assert.Equal(expected.PagesOn(h), actual.PagesOn(h));
        for (long p = 0; p < expected.PageCount; p++) Assert.Equal(expected.HostOf(p), actual.HostOf(p));
    }

    [Fact]
    public void A_4_GiB_vm_split_in_1_MiB_chunks_serializes_to_a_few_KiB_and_reads_back_the_same()
    {
        const long pages = 4L << 30 >> Page.Shift; // 1 Mi pages
        var map = new MemoryMap(pages, [A, B, C]);
        // The main's quarter first, then chunks dealt round the sub-hosts, as SplitPlan does.
        for (long p = pages / 4; p < pages; p++) map.Assign(p, 1 + (int)((p / SplitPlan.ChunkPages) % 3));
        map.Move(12345, MemoryMap.Main);

        byte[] bytes = map.Serialize();

        Assert.True(bytes.Length < 16 * 1024, $"{bytes.Length} bytes");
        AssertSame(map, MemoryMap.Deserialize(bytes));
    }

    [Fact]
    public void A_scattered_map_falls_back_to_packed_owners_and_reads_back_the_same()
    {
        var map = new MemoryMap(100_003, [A, B]);
        var rng = new Random(3);
        for (long p = 0; p < map.PageCount; p++) map.Assign(p, rng.Next(3));
        map.Move([1, 2, 3], 2);

        byte[] bytes = map.Serialize();

        Assert.True(bytes.Length <= 100_003 / 4 + 128, $"{bytes.Length} bytes for 2 bits a page");
        AssertSame(map, MemoryMap.Deserialize(bytes));
    }

    [Fact]
    public void Every_change_batch_bumps_the_version_and_counts_follow_the_moves()
    {
        var map = new MemoryMap(1000, [A, B]);
        Assert.Equal(0, map.Version);
        Assert.Equal(1000, map.PagesOn(MemoryMap.Main));
        map.Move([10, 11, 12], 2);
        map.Move(10, 1);
        Assert.Equal(2, map.Version);
        Assert.Equal(997, map.PagesOn(MemoryMap.Main));
        Assert.Equal(1, map.PagesOn(1));
        Assert.Equal(2, map.PagesOn(2));
        Assert.Throws<ArgumentOutOfRangeException>(() => map.Move(5, 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => map.Move(1000, 1));
    }

    [Fact]
    public void A_corrupt_truncated_or_foreign_map_is_refused_naming_the_problem()
    {
        var map = new MemoryMap(4096, [A, B]);
        for (long p = 2048; p < 4096; p++) map.Assign(p, 1 + (int)(p / 256 % 2));
        byte[] good = map.Serialize();

        var flipped = (byte[])good.Clone();
        flipped[good.Length / 2] ^= 0x10;
        Assert.Contains("checksum", Assert.Throws<InvalidDataException>(() => MemoryMap.Deserialize(flipped)).Message);
        Assert.Contains("checksum", Assert.Throws<InvalidDataException>(() => MemoryMap.Deserialize(good.AsSpan(0, good.Length - 3))).Message);
        Assert.Contains("MFMM", Assert.Throws<InvalidDataException>(() => MemoryMap.Deserialize("not a map at all"u8)).Message);
        var future = (byte[])good.Clone();
        future[4] = 9;
        Assert.Contains("version 9", Assert.Throws<InvalidDataException>(() => MemoryMap.Deserialize(future)).Message);
    }

    [Fact]
    public void A_map_for_another_vm_size_is_refused_by_the_pager()
    {
        using var memory = new GuestMemory(4 << 20);
        var e = Assert.Throws<ArgumentException>(() => new RemotePager("vm", memory, new MemoryMap(10, [A]), new RemotePagerOptions { BudgetPages = 512 }));
        Assert.Contains("1024", e.Message);
    }

    [Fact]
    public void The_plan_gives_the_main_its_budget_and_deals_the_rest_by_sub_host_budget_in_chunks()
    {
        using var memory = new GuestMemory(64 << 20); // 16384 pages
        using var mmu = new SoftwareMmu(memory);
        using (var cpu = mmu.CreateVcpu())
        {
            var page = new byte[Page.Size];
            page[0] = 1;
            for (long p = 0; p < 16000; p++) cpu.Write(p << Page.Shift, page);
        }
        memory.Accessed.ClearAll();
        using (var cpu = mmu.CreateVcpu())
            for (long p = 8000; p < 9000; p++) cpu.Read(p << Page.Shift, new byte[8]);

        var plan = SplitPlan.Create(memory, 2000, [A, B], [12000, 4000]);

        // The hot (accessed) pages go to the main first.
        for (long p = 8000; p < 9000; p++) Assert.Equal(MemoryMap.Main, plan.HostOf(p));
        Assert.Equal(2000, plan.MainPages);
        Assert.Equal(14000, plan.SubPages);
        // 3:1 by budget, in whole chunks; untouched pages stay with the main.
        Assert.InRange(plan.PagesOnSubHost(0), 10500 - SplitPlan.ChunkPages, 10500 + SplitPlan.ChunkPages);
        Assert.InRange(plan.PagesOnSubHost(1), 3500 - SplitPlan.ChunkPages, 4000);
        for (long p = 16000; p < 16384; p++) Assert.Equal(MemoryMap.Main, plan.HostOf(p));
        Assert.Equal(plan.MainPages + 384, plan.Map.PagesOn(MemoryMap.Main));

        var e = Assert.Throws<ArgumentException>(() => SplitPlan.Create(memory, 2000, [A, B], [5000, 3000]));
        Assert.Contains("do not fit", e.Message);
    }

    [Theory]
    [InlineData("none", "SubHosts")]
    [InlineData("relative", "SubHosts[1]")]
    [InlineData("repeated", "repeats")]
    [InlineData("budget-count", "SubHostBudgetPages")]
    [InlineData("budget-zero", "SubHostBudgetPages[1]")]
    public void Split_options_name_the_bad_sub_host_setting(string bad, string named)
    {
        var options = new SplitOptions { SubHosts = [A, B], MainBudgetPages = 100 };
        switch (bad)
        {
            case "none": options.SubHosts = []; break;
            case "relative": options.SubHosts = [A, new Uri("/x", UriKind.Relative)]; break;
            case "repeated": options.SubHosts = [A, new Uri("http://10.0.0.1:7001/other")]; break;
            case "budget-count": options.SubHostBudgetPages = [10]; break;
            case "budget-zero": options.SubHostBudgetPages = [10, 0]; break;
        }
        var e = Assert.Throws<ArgumentException>(() => new Split(options));
        Assert.Contains(named, e.Message);
    }

    [Fact]
    public void Remote_pager_options_name_a_bad_prefetch_or_sub_host_budget()
    {
        using var memory = new GuestMemory(4 << 20);
        var e = Assert.Throws<ArgumentException>(() => new RemotePager("vm", memory, new MemoryMap(1024, [A]), new RemotePagerOptions { BudgetPages = 512, Prefetch = -1 }));
        Assert.Contains("Prefetch", e.Message);
        e = Assert.Throws<ArgumentException>(() => new RemotePager("vm", memory, new MemoryMap(1024, [A]), new RemotePagerOptions { BudgetPages = 100, PageOutBatch = 64, Prefetch = 40 }));
        Assert.Contains("Prefetch", e.Message);
        e = Assert.Throws<ArgumentException>(() => new RemotePager("vm", memory, new MemoryMap(1024, [A]), new RemotePagerOptions { BudgetPages = 512, SubHostBudgetPages = [1, 2] }));
        Assert.Contains("SubHostBudgetPages", e.Message);
    }
    [Fact]
    public async Task A_main_host_resumed_by_a_source_that_did_not_split_refuses_by_name_and_the_vm_stays_at_the_source()
    {
        await using var source = await Support.Agent.StartAsync();
        await using var mainAgent = await Support.Agent.StartAsync();
        using var vm = new Support.TestVm(4 << 20);
        using var target = new Support.TestVm(4 << 20);
        vm.Fill(stride: 1);
        using var main = new SplitMainHost("not-split-1", "vm-1", target.Memory, target.Mmu, new RemotePagerOptions { BudgetPages = 512 });
        mainAgent.Pages.Accept(main.Incoming);

        var e = await Assert.ThrowsAsync<Migration.DataPlane.MigrationFailedException>(() => new PreCopy(new PreCopyOptions())
            .RunAsync(new MigrationJob { MigrationId = "not-split-1", Vm = "vm-1", Memory = vm.Memory, Mmu = vm.Mmu, Destination = mainAgent.Address })
            .WaitAsync(TimeSpan.FromSeconds(60)));

        Assert.Contains("SwitchOver", e.Message);
        Assert.False(vm.Mmu.IsPaused, "the VM keeps running at the source");
        // The main names what was missing.
        var aborted = await Assert.ThrowsAsync<Migration.DataPlane.MigrationAbortedException>(() => main.Incoming.Completion.WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains("split memory map", aborted.Message);
        Assert.False(main.IsResumed);
        Assert.Throws<InvalidOperationException>(() => main.Pager);
    }
}
