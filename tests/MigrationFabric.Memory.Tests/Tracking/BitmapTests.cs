using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Tests.Support;
using MigrationFabric.Memory.Tracking;
using Xunit;

namespace MigrationFabric.Memory.Tests.Tracking;

public class BitmapTests
{
    private struct Collect(List<long> into) : IPageVisitor
    {
        public void Visit(long page) => into.Add(page);
    }

    private struct Counter : IPageVisitor
    {
        public long[] Seen;
        public void Visit(long page) => Seen[page]++;
    }

    [Fact]
    public void Fetch_and_clear_returns_exactly_the_set_pages_in_order_and_clears_them()
    {
        var b = new DirtyBitmap(1000);
        long[] pages = [0, 1, 63, 64, 65, 500, 998, 999];
        foreach (var p in pages) b.MarkDirty(p);
        b.MarkDirty(500);
        Assert.Equal(pages.Length, b.CountSet());
        Assert.Equal(pages.Length, b.NewlyDirtiedTotal);
        var got = new List<long>();
        var v = new Collect(got);
        Assert.Equal(pages.Length, b.FetchAndClear(ref v));
        Assert.Equal(pages, got);
        Assert.Equal(0, b.CountSet());
        got.Clear();
        Assert.Equal(0, b.FetchAndClear(ref v));
    }

    [Fact]
    public void Fetch_and_clear_of_a_range_leaves_the_rest()
    {
        var b = new DirtyBitmap(300);
        b.SetAll();
        Assert.Equal(300, b.CountSet());
        var got = new List<long>();
        var v = new Collect(got);
        Assert.Equal(70, b.FetchAndClear(60, 70, ref v));
        Assert.Equal(Enumerable.Range(60, 70).Select(i => (long)i), got);
        Assert.Equal(230, b.CountSet());
        Assert.True(b.IsSet(59));
        Assert.True(b.IsSet(130));
        Assert.False(b.IsSet(129));
        Assert.Throws<ArgumentOutOfRangeException>(() => b.FetchAndClear(250, 51, ref v));
    }

    [Fact]
    public void Fetch_into_another_bitmap_moves_the_bits()
    {
        var a = new DirtyBitmap(200);
        var c = new DirtyBitmap(200);
        a.MarkDirty(3);
        a.MarkDirty(150);
        c.MarkDirty(4);
        Assert.Equal(2, a.FetchAndClearInto(c));
        Assert.Equal(0, a.CountSet());
        Assert.True(c.IsSet(3) && c.IsSet(4) && c.IsSet(150));
        Assert.Throws<ArgumentException>(() => a.FetchAndClearInto(new DirtyBitmap(100)));
    }

    [Fact]
    public void Access_bits_are_test_and_clear_sampled()
    {
        var b = new AccessBitmap(128);
        b.MarkAccessed(77);
        Assert.True(b.TestAndClear(77));
        Assert.False(b.TestAndClear(77));
        Assert.False(b.IsSet(77));
        Assert.Throws<ArgumentOutOfRangeException>(() => b.TestAndClear(128));
        Assert.Throws<ArgumentOutOfRangeException>(() => new AccessBitmap(0));
    }

    [Fact]
    public async Task No_dirty_bit_is_lost_while_writers_race_fetch_and_clear()
    {
        // Writers record every page they dirtied after their last write barrier; the harvester's rounds
        // plus a final round must cover every write: each (writer, page) pair written is seen at least once.
        const long pages = 4096;
        var bitmap = new DirtyBitmap(pages);
        var seen = new long[pages];
        var written = new long[pages];
        using var stop = new CancellationTokenSource();
        var writers = Enumerable.Range(0, 2).Select(w => VcpuThread.Start(() =>
        {
            var rng = new Random(w);
            while (!stop.IsCancellationRequested)
            {
                long p = rng.NextInt64(pages);
                Interlocked.Increment(ref written[p]);
                bitmap.MarkDirty(p);
            }
        })).ToArray();
        var counter = new Counter { Seen = seen };
        long rounds = 0;
        var deadline = DateTime.UtcNow.AddMilliseconds(300);
        while (DateTime.UtcNow < deadline) { bitmap.FetchAndClear(ref counter); rounds++; }
        stop.Cancel();
        await Task.WhenAll(writers).WaitAsync(VcpuThread.Generous);
        bitmap.FetchAndClear(ref counter);
        Assert.True(rounds > 10);
        for (long p = 0; p < pages; p++)
            if (written[p] > 0) Assert.True(seen[p] > 0, $"page {p} was written {written[p]} times but never harvested");
            else Assert.Equal(0, seen[p]);
    }

    [Fact]
    public async Task Vcpu_writes_after_a_harvest_are_in_the_next_round()
    {
        using var m = new GuestMemory(16L << 20);
        using var mmu = new SoftwareMmu(m);
        using var stop = new CancellationTokenSource();
        long lastRoundWrites = 0;
        var writer = VcpuThread.Start(() =>
        {
            using var cpu = mmu.CreateVcpu();
            for (long i = 0; !stop.IsCancellationRequested; i++) cpu.WriteUInt64((i % m.PageCount) * Page.Size, (ulong)i);
        });
        var total = new Counter { Seen = new long[m.PageCount] };
        for (int r = 0; r < 20; r++) lastRoundWrites = m.Dirty.FetchAndClear(ref total);
        stop.Cancel();
        await writer.WaitAsync(VcpuThread.Generous);
        m.Dirty.FetchAndClear(ref total);
        // every page the writer stored to is resident and was harvested at least once
        for (long p = 0; p < m.PageCount; p++)
            Assert.Equal(m.GetResidency(p) == PageResidency.Resident, total.Seen[p] > 0);
        Assert.True(lastRoundWrites >= 0);
    }

    [Fact]
    public void Dirty_rate_is_newly_dirtied_pages_per_second_over_the_window()
    {
        var time = new ManualTime();
        var b = new DirtyBitmap(10_000);
        var meter = new DirtyRateMeter(b, TimeSpan.FromSeconds(1), time);
        Assert.Equal(0, meter.PagesPerSecond);
        meter.Sample();
        for (int i = 0; i < 500; i++) b.MarkDirty(i);
        for (int i = 0; i < 500; i++) b.MarkDirty(i); // re-dirtying a dirty page does not count
        time.Advance(TimeSpan.FromMilliseconds(500));
        meter.Sample();
        Assert.Equal(1000, meter.PagesPerSecond, 3);
        // samples older than the window drop out
        time.Advance(TimeSpan.FromMilliseconds(800));
        meter.Sample();
        Assert.Equal(0, meter.PagesPerSecond, 3);
        Assert.Throws<ArgumentOutOfRangeException>(() => new DirtyRateMeter(b, TimeSpan.Zero));
    }

    private sealed class ManualTime : TimeProvider
    {
        private long _ticks = 1;
        public override long TimestampFrequency => TimeSpan.TicksPerSecond;
        public override long GetTimestamp() => _ticks;
        public void Advance(TimeSpan d) => _ticks += d.Ticks;
    }
}
