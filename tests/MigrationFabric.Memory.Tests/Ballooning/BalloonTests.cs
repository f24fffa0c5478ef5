using MigrationFabric.Memory.Ballooning;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Tests.Support;
using MigrationFabric.Memory.Workloads;
using Xunit;

namespace MigrationFabric.Memory.Tests.Ballooning;

public class BalloonTests
{
    private const long Size = 16L << 20; // 4096 pages

    [Fact]
    public void Inflate_takes_freed_pages_first_returning_their_ram_then_untouched_pages_from_the_top()
    {
        using var m = new GuestMemory(Size);
        using var mmu = new SoftwareMmu(m);
        using var cpu = mmu.CreateVcpu();
        for (long p = 0; p < 100; p++) cpu.WriteUInt64(p * Page.Size, 0xFF);
        var free = new FreePageReport(m);
        free.ReportFree(10, 20);
        Assert.Equal(4096 - 100 + 20, free.FreeCount());
        var balloon = new Balloon(m, free);
        Assert.Equal(50, balloon.InflateTo(50));
        Assert.Equal(50, balloon.SizePages);
        for (long p = 10; p < 30; p++) Assert.Equal(PageResidency.Ballooned, m.GetResidency(p));
        for (long p = 4095; p >= 4066; p--) Assert.Equal(PageResidency.Ballooned, m.GetResidency(p));
        Assert.Equal(80, m.ResidentPages);
        Assert.Equal(0, free.ExplicitlyFreedCount);
        // in-use pages are never taken
        for (long p = 0; p < 10; p++) Assert.Equal(PageResidency.Resident, m.GetResidency(p));
    }

    [Fact]
    public void Inflate_stops_when_free_pages_run_out_and_respects_its_maximum()
    {
        using var m = new GuestMemory(Size);
        using var mmu = new SoftwareMmu(m);
        using var cpu = mmu.CreateVcpu();
        cpu.Fill(0, 4000L * Page.Size, 1);
        var balloon = new Balloon(m, new FreePageReport(m), new BalloonOptions { MaxFraction = 0.5 });
        Assert.Equal(96, balloon.InflateTo(2048));
        Assert.Equal(2048, balloon.MaxPages);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => balloon.InflateTo(2049));
        Assert.Contains("MaxFraction", e.Message);
        Assert.Throws<ArgumentException>(() => new Balloon(m, new FreePageReport(m), new BalloonOptions { MaxFraction = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new FreePageReport(m).ReportFree(4090, 10));
    }

    [Fact]
    public void Deflate_gives_zero_pages_back_at_once()
    {
        using var m = new GuestMemory(Size);
        var balloon = new Balloon(m, new FreePageReport(m));
        balloon.InflateTo(3000);
        Assert.Equal(3000, m.CountOf(PageResidency.Ballooned));
        Assert.Equal(1000, balloon.Deflate(1000));
        Assert.Equal(2000, balloon.SizePages);
        Assert.Equal(2000, balloon.DeflateTo(0));
        Assert.Equal(4096, m.CountOf(PageResidency.Zero));
        Assert.Equal(0, balloon.DeflateTo(0));
    }

    [Fact]
    public async Task A_spike_into_ballooned_memory_deflates_on_demand_without_swap_or_faults_and_the_balloon_reinflates_after()
    {
        using var m = new GuestMemory(Size);
        using var mmu = new SoftwareMmu(m); // no fault handler: any swap-in would fail the workload
        var free = new FreePageReport(m);
        var balloon = new Balloon(m, free);
        var spike = new MemorySpikeWorkload(new MemorySpikeOptions { BasePages = 512, SpikePages = 1536 }, free);
        using var cts = new CancellationTokenSource();
        var run = spike.RunAsync(mmu, cts.Token);
        Assert.True(SpinWait.SpinUntil(() => m.ResidentPages == 512, VcpuThread.Generous));

        // continuous ballooning keeps the footprint tight: everything but the base (and 10%) goes
        Assert.Equal(3072, balloon.InflateTo(3072));
        Assert.Equal(512, m.ResidentPages);

        spike.TriggerSpike();
        await spike.Spiked.WaitAsync(VcpuThread.Generous);
        Assert.Equal(2048, m.ResidentPages);
        Assert.True(mmu.DeflatesOnTouch > 0, "the spike reached ballooned pages");
        Assert.Equal(mmu.DeflatesOnTouch, 3072 - balloon.SizePages);
        Assert.Equal(0, mmu.FaultsResolved);

        // the spike ends: its pages are reported free and the balloon takes them (and their RAM) back
        spike.Release();
        await spike.Released.WaitAsync(VcpuThread.Generous);
        Assert.Equal(1536, free.ExplicitlyFreedCount);
        Assert.Equal(1024, balloon.InflateTo(3072));
        Assert.Equal(3072, balloon.SizePages);
        // the 1024 pages came from the freed spike pages (their RAM returned), none from the base
        Assert.Equal(512, free.ExplicitlyFreedCount);
        Assert.Equal(2048 - 1024, m.ResidentPages);
        for (long p = 0; p < 512; p++) Assert.Equal(PageResidency.Resident, m.GetResidency(p));
        cts.Cancel();
        await run.WaitAsync(VcpuThread.Generous);
    }
}
