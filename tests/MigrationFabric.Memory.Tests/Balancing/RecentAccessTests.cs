using MigrationFabric.Memory.Balancing;
using MigrationFabric.Memory.Tracking;
using Xunit;

namespace MigrationFabric.Memory.Tests.Balancing;

/// <summary>The demand monitor clears the access bits it samples and keeps what it saw in <see cref="DemandMonitor.RecentAccess"/>.</summary>
public sealed class RecentAccessTests
{
    private const long Pages = 4096;

    private static long FirstSampled(DemandMonitor monitor, AtomicPageBitmap bits)
    {
        // The sample is private: find a sampled page by what one epoch clears.
        bits.SetAll();
        monitor.SampleOnce();
        for (long p = 0; p < Pages; p++)
            if (!bits.IsSet(p)) return p;
        throw new InvalidOperationException("the monitor sampled no page");
    }

    [Fact]
    public void A_sampled_page_seen_accessed_stays_recent_for_RecentEpochs_epochs_after_its_bit_is_cleared()
    {
        var bits = new AtomicPageBitmap(Pages);
        using var monitor = new DemandMonitor(bits, new DemandMonitorOptions { SampleEvery = 8, RecentEpochs = 3 });
        long sampled = FirstSampled(monitor, bits);
        long cleared = 0;
        for (long p = 0; p < Pages; p++)
            if (!bits.IsSet(p)) cleared++;
        // Exactly the pages whose bits it took are recent; every other page's bit is untouched and not recent.
        Assert.Equal(monitor.SampledPages, cleared);
        Assert.Equal(cleared, monitor.RecentAccess.CountSet());
        for (long p = 0; p < Pages; p++) Assert.Equal(!bits.IsSet(p), monitor.RecentAccess.IsSet(p));

        // Not touched again: still recent for two more epochs, gone at the third.
        monitor.SampleOnce();
        monitor.SampleOnce();
        Assert.True(monitor.RecentAccess.IsSet(sampled));
        monitor.SampleOnce();
        Assert.False(monitor.RecentAccess.IsSet(sampled));
        Assert.Equal(0, monitor.RecentAccess.CountSet());

        // Touched again: recent again, and the window starts over.
        bits.Set(sampled);
        monitor.SampleOnce();
        Assert.False(bits.IsSet(sampled));
        Assert.True(monitor.RecentAccess.IsSet(sampled));
        monitor.SampleOnce();
        monitor.SampleOnce();
        Assert.True(monitor.RecentAccess.IsSet(sampled));
    }

    [Fact]
    public void RecentEpochs_below_one_is_refused_by_name()
    {
        var e = Assert.Throws<ArgumentException>(() => new DemandMonitor(new AtomicPageBitmap(Pages), new DemandMonitorOptions { RecentEpochs = 0 }));
        Assert.Contains("RecentEpochs", e.Message);
    }
}
