using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Tests.Support;
using MigrationFabric.Memory.Tracking;
using Xunit;

namespace MigrationFabric.Memory.Tests.Tracking;

public class PreCopyHarvestTests
{
    /// <summary>Copies each harvested page into the "destination", as a pre-copy round sends it.</summary>
    private readonly struct CopyToShadow(GuestMemory memory, byte[] shadow) : IPageVisitor
    {
        public void Visit(long page) => memory.GetPageBytes(page).CopyTo(shadow.AsSpan((int)(page * Page.Size), Page.Size));
    }

    [Fact]
    public async Task Rounds_of_harvest_and_copy_while_vcpus_write_then_pause_and_a_last_round_leave_an_exact_copy()
    {
        const long pages = 128;
        using var m = new GuestMemory(16L << 20);
        using var mmu = new SoftwareMmu(m);
        var shadow = new byte[m.SizeBytes];
        using var stop = new CancellationTokenSource();
        var writers = Enumerable.Range(0, 2).Select(i => VcpuThread.Start(() =>
        {
            using var cpu = mmu.CreateVcpu(stop.Token);
            var rng = new Random(i);
            // whole-page stores keep each write in flight long enough for a round to land in the middle of it
            for (byte v = 1; !stop.IsCancellationRequested; v++)
                cpu.Fill(rng.NextInt64(pages) * Page.Size, Page.Size, v);
        })).ToArray();
        var copier = new CopyToShadow(m, shadow);
        long rounds = 0, sent = 0;
        var deadline = DateTime.UtcNow.AddMilliseconds(400);
        while (DateTime.UtcNow < deadline) { sent += m.HarvestDirty(ref copier); rounds++; }

        mmu.Pause(); // switch-over: vCPUs stopped, every completed store has its dirty bit
        sent += m.HarvestDirty(ref copier);
        stop.Cancel();
        try { await Task.WhenAll(writers).WaitAsync(VcpuThread.Generous); }
        catch (OperationCanceledException) { }

        Assert.True(rounds > 10 && sent > pages, $"{rounds} rounds sent {sent} pages");
        for (long p = 0; p < pages; p++)
            Assert.True(m.GetPageBytes(p).SequenceEqual(shadow.AsSpan((int)(p * Page.Size), Page.Size)), $"page {p} differs from its pre-copied image");
    }

    [Fact]
    public void Harvest_of_a_clean_log_visits_nothing()
    {
        using var m = new GuestMemory(16L << 20);
        var copier = new CopyToShadow(m, new byte[m.SizeBytes]);
        Assert.Equal(0, m.HarvestDirty(ref copier));
        m.Dirty.MarkDirty(5);
        Assert.Equal(1, m.HarvestDirty(ref copier));
        Assert.Equal(0, m.Dirty.CountSet());
    }
}
