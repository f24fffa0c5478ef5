using MigrationFabric.Memory.Balancing;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Swap;
using MigrationFabric.Memory.Tests.Support;
using MigrationFabric.Memory.Tracking;
using Xunit;

namespace MigrationFabric.Memory.Tests.Balancing;

public sealed class DemandMonitorTests
{
    private const long Pages = 16384; // 64 MiB

    private static void TouchEpoch(AtomicPageBitmap bits, long first, long count, Random? rng = null, double fraction = 1)
    {
        for (var p = first; p < first + count; p++)
        {
            if (rng is null || rng.NextDouble() < fraction) bits.Set(p);
        }
    }

    [Theory]
    [InlineData(1024)]
    [InlineData(4096)]
    [InlineData(12000)]
    public void A_working_set_touched_every_epoch_is_estimated_within_15_percent(long workingSet)
    {
        var bits = new AtomicPageBitmap(Pages);
        // One page in 8: about 128 samples in the smallest working set, so sampling error stays near 10%.
        using var monitor = new DemandMonitor(bits, new DemandMonitorOptions { SampleEvery = 8 });
        for (var epoch = 0; epoch < 20; epoch++)
        {
            TouchEpoch(bits, 2000 % (Pages - workingSet), workingSet);
            monitor.SampleOnce();
        }
        var demand = monitor.EstimateDemandPages();
        Assert.InRange(demand, workingSet * 0.85, workingSet * 1.15);
        var curve = monitor.GetCurve();
        Assert.True(curve.References > 0);
        Assert.True(curve.ColdMisses > 0);
        for (var i = 1; i < curve.MissRatio.Length; i++) Assert.True(curve.MissRatio[i] <= curve.MissRatio[i - 1]);
        // Below the working set every re-reference misses (cyclic access is LRU's worst case); at it, none does.
        Assert.Equal(1.0, curve.MissRatio[0]);
        Assert.Equal(0.0, curve.MissRatio[^1]);
    }

    [Fact]
    public void The_estimate_follows_a_growing_working_set_through_decay()
    {
        var bits = new AtomicPageBitmap(Pages);
        using var monitor = new DemandMonitor(bits, new DemandMonitorOptions { DecayEveryEpochs = 5, SampleEvery = 8 });
        var rng = new Random(7);
        for (var epoch = 0; epoch < 30; epoch++)
        {
            TouchEpoch(bits, 0, 2048, rng, 0.7);
            monitor.SampleOnce();
        }
        var small = monitor.EstimateDemandPages();
        for (var epoch = 0; epoch < 60; epoch++)
        {
            TouchEpoch(bits, 0, 8192, rng, 0.7);
            monitor.SampleOnce();
        }
        var large = monitor.EstimateDemandPages();
        Assert.InRange(small, 2048 * 0.7, 2048 * 1.15);
        Assert.InRange(large, 8192 * 0.7, 8192 * 1.15);
    }

    [Fact]
    public void An_idle_vm_has_no_demand_and_a_cold_start_is_not_a_miss_ratio()
    {
        var bits = new AtomicPageBitmap(Pages);
        using var monitor = new DemandMonitor(bits);
        monitor.SampleOnce();
        Assert.Equal(0, monitor.EstimateDemandPages());
        TouchEpoch(bits, 0, Pages);
        monitor.SampleOnce();
        var curve = monitor.GetCurve();
        Assert.Equal(0, curve.References);
        Assert.Equal(monitor.SampledPages, curve.ColdMisses);
        Assert.Equal(0, monitor.EstimateDemandPages());
    }

    [Fact]
    public async Task Sampling_a_running_vcpu_through_the_mmu_finds_its_working_set_and_measures_its_own_cost()
    {
        const long workingSet = 3000;
        using var memory = new GuestMemory(Pages * Page.Size);
        using var mmu = new SoftwareMmu(memory);
        await using var monitor = new DemandMonitor(memory.Accessed, new DemandMonitorOptions { SamplingInterval = TimeSpan.FromMilliseconds(5) });
        monitor.Start();
        Assert.Throws<InvalidOperationException>(monitor.Start);
        using var stop = new CancellationTokenSource();
        var vcpu = VcpuThread.Start(() =>
        {
            using var cpu = mmu.CreateVcpu();
            var rng = new Random(1);
            while (!stop.IsCancellationRequested)
                cpu.WriteUInt64(rng.NextInt64(workingSet) * Page.Size, 1);
        });
        var deadline = DateTime.UtcNow + VcpuThread.Generous;
        while (monitor.Epochs < 60 && DateTime.UtcNow < deadline)
            await Task.Delay(20);
        await stop.CancelAsync();
        await vcpu.WaitAsync(VcpuThread.Generous);

        Assert.True(monitor.Epochs >= 60, $"only {monitor.Epochs} epochs");
        Assert.InRange(monitor.EstimateDemandPages(), workingSet * 0.5, workingSet * 1.15);
        Assert.True(monitor.SamplingTime > TimeSpan.Zero);
        Assert.InRange(monitor.Overhead, double.Epsilon, 1);
    }

    [Fact]
    public async Task Under_private_virtual_memory_the_monitor_samples_the_bits_the_pager_forwards()
    {
        const long workingSet = 2048;
        using var memory = new GuestMemory(Pages * Page.Size);
        var dir = Directory.CreateTempSubdirectory("mf-demand-pvm-").FullName;
        try
        {
            await using var pvm = new PrivateVirtualMemory(memory, new PrivateVirtualMemoryOptions
            {
                SharePages = Pages / 2,
                SwapFilePath = Path.Combine(dir, "vm.swap"),
                ScanAccessBitsPeriodically = false,
            });
            using var mmu = new SoftwareMmu(memory, pvm);
            using var monitor = new DemandMonitor(pvm.ForwardedAccess, new DemandMonitorOptions { SampleEvery = 8 });
            await VcpuThread.Start(() =>
            {
                using var cpu = mmu.CreateVcpu();
                for (var epoch = 0; epoch < 15; epoch++)
                {
                    for (long p = 0; p < workingSet; p++) cpu.WriteUInt64(p * Page.Size, (ulong)epoch);
                    pvm.ScanAccessBits();   // the pager harvests the MMU's bits (moving chunks up its LRU)...
                    monitor.SampleOnce();    // ...and the monitor still sees every access.
                }
            }).WaitAsync(VcpuThread.Generous);
            Assert.InRange(monitor.EstimateDemandPages(), workingSet * 0.85, workingSet * 1.15);
            Assert.Equal(0, memory.Accessed.CountSet());
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Sampling_is_sparse_enough_for_large_vms_and_options_are_validated()
    {
        var big = new AtomicPageBitmap(1L << 22);
        using var monitor = new DemandMonitor(big, new DemandMonitorOptions { MaxSampledPages = 1000 });
        Assert.InRange(monitor.SampledPages, 1, 1000);
        Assert.True(monitor.PagesPerSample >= 4096);

        var bits = new AtomicPageBitmap(64);
        Assert.Contains("SampleEvery", Assert.Throws<ArgumentException>(() => new DemandMonitor(bits, new DemandMonitorOptions { SampleEvery = 0 })).Message);
        Assert.Contains("MissRatioThreshold", Assert.Throws<ArgumentException>(() => new DemandMonitor(bits, new DemandMonitorOptions { MissRatioThreshold = 1 })).Message);
        Assert.Contains("SamplingInterval", Assert.Throws<ArgumentException>(() => new DemandMonitor(bits, new DemandMonitorOptions { SamplingInterval = TimeSpan.Zero })).Message);
        Assert.Throws<ArgumentNullException>(() => new DemandMonitor(null!));
        using var tiny = new DemandMonitor(bits);
        Assert.True(tiny.SampledPages >= 1);
    }
}
