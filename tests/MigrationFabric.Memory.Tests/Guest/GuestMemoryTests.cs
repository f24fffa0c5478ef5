using Xunit;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Pages;

namespace MigrationFabric.Memory.Tests.Guest;

public class GuestMemoryTests
{
    private const long Size = 16L << 20;

    [Fact]
    public void New_memory_is_all_zero_pages_with_nothing_resident()
    {
        using var m = new GuestMemory(Size);
        Assert.Equal(4096, m.PageCount);
        Assert.Equal(0, m.ResidentPages);
        Assert.Equal(m.PageCount, m.CountByResidency()[(int)PageResidency.Zero]);
        Assert.True(m.GetPageBytes(123).IndexOfAnyExcept((byte)0) < 0);
    }

    [Fact]
    public void Preallocated_pages_keep_their_residency_and_bytes_and_a_range_outside_is_refused()
    {
        using var m = new GuestMemory(Size);
        bool done = m.Preallocate(0, m.PageCount);
        Assert.True(done || !OperatingSystem.IsLinux(), "MADV_POPULATE_WRITE is refused by this kernel");
        Assert.Equal(0, m.ResidentPages);
        Assert.Equal(m.PageCount, m.CountOf(PageResidency.Zero));
        Assert.True(m.GetRangeBytes(0, (int)m.PageCount).IndexOfAnyExcept((byte)0) < 0);
        Assert.True(m.Preallocate(10, 0));
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => m.Preallocate(4000, 97));
        Assert.Contains("[4000, 4097)", e.Message);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-4096)]
    [InlineData(4095)]
    [InlineData(16L * 1024 * 1024 + 1)]
    public void Size_that_is_not_a_positive_multiple_of_a_page_is_rejected(long size)
    {
        var e = Assert.Throws<ArgumentException>(() => new GuestMemory(size));
        Assert.Contains("SizeBytes", e.Message);
    }

    [Fact]
    public void Size_beyond_the_maximum_is_rejected()
    {
        var e = Assert.Throws<ArgumentException>(() => new GuestMemory(GuestMemoryOptions.MaxSizeBytes + 4096));
        Assert.Contains("maximum", e.Message);
    }

    [Fact]
    public void Budget_outside_the_memory_is_rejected()
    {
        var e = Assert.Throws<ArgumentException>(() => new GuestMemory(new GuestMemoryOptions { SizeBytes = Size, ResidentBudgetPages = 5000 }));
        Assert.Contains("ResidentBudgetPages", e.Message);
        using var m = new GuestMemory(Size);
        Assert.Throws<ArgumentOutOfRangeException>(() => m.ResidentBudgetPages = 0);
    }

    [Fact]
    public void Page_out_of_range_is_rejected_everywhere()
    {
        using var m = new GuestMemory(Size);
        Assert.Throws<ArgumentOutOfRangeException>(() => m.GetResidency(4096));
        Assert.Throws<ArgumentOutOfRangeException>(() => m.GetResidency(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => m.GetPageBytes(4096));
        Assert.Throws<ArgumentOutOfRangeException>(() => m.BeginInstall(4096, PageResidency.Zero));
        Assert.Throws<ArgumentOutOfRangeException>(() => m.BeginEviction(4090, 7));
        Assert.Throws<ArgumentOutOfRangeException>(() => m.TryTransition(99999, PageResidency.Zero, PageResidency.Remote));
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => m.GetPageBytes(5000));
        Assert.Contains("page 5000", e.Message);
    }

    [Fact]
    public void Install_from_remote_makes_the_page_resident_with_its_bytes()
    {
        using var m = new GuestMemory(Size);
        Assert.True(m.TryTransition(10, PageResidency.Zero, PageResidency.Remote));
        Assert.Equal(PageResidency.Remote, m.GetResidency(10));
        var contents = new byte[Page.Size];
        Random.Shared.NextBytes(contents);
        Assert.True(m.TryInstall(10, PageResidency.Remote, contents));
        Assert.Equal(PageResidency.Resident, m.GetResidency(10));
        Assert.Equal(1, m.ResidentPages);
        Assert.True(m.GetPageBytes(10).SequenceEqual(contents));
        // a second installer loses and writes nothing
        Assert.False(m.TryInstall(10, PageResidency.Remote, new byte[Page.Size]));
        Assert.True(m.GetPageBytes(10).SequenceEqual(contents));
    }

    [Fact]
    public void Install_of_wrong_length_or_from_resident_is_rejected()
    {
        using var m = new GuestMemory(Size);
        Assert.Throws<ArgumentException>(() => m.TryInstall(1, PageResidency.Zero, new byte[100]));
        Assert.Throws<ArgumentException>(() => m.BeginInstall(1, PageResidency.Resident));
        Assert.Throws<InvalidOperationException>(() => m.CompleteInstall(1, PageResidency.Zero));
    }

    [Fact]
    public void Aborted_install_returns_to_its_state_and_drops_the_bytes()
    {
        using var m = new GuestMemory(Size);
        m.TryTransition(3, PageResidency.Zero, PageResidency.Swapped);
        var dest = m.BeginInstall(3, PageResidency.Swapped);
        Assert.Equal(PageResidency.Installing, m.GetResidency(3));
        dest.Fill(0xAB);
        m.AbortInstall(3, PageResidency.Swapped);
        Assert.Equal(PageResidency.Swapped, m.GetResidency(3));
        Assert.Equal(0, m.ResidentPages);
        Assert.True(m.GetPageBytes(3).IndexOfAnyExcept((byte)0) < 0);
    }

    [Theory]
    [InlineData(PageResidency.Swapped)]
    [InlineData(PageResidency.Remote)]
    [InlineData(PageResidency.Ballooned)]
    [InlineData(PageResidency.Zero)]
    public void Eviction_drops_the_ram_and_publishes_the_target(PageResidency target)
    {
        using var m = new GuestMemory(Size);
        for (long p = 20; p < 24; p++) Assert.True(m.TryInstall(p, PageResidency.Zero, Filled((byte)p)));
        Assert.Equal(4, m.ResidentPages);
        Assert.Equal(4, m.BeginEviction(18, 8));
        Assert.Equal(PageResidency.Evicting, m.GetResidency(21));
        Assert.Equal(4, m.ResidentPages);
        // the evictor can still read what it must save
        Assert.Equal(21, m.GetPageBytes(21)[100]);
        Assert.Equal(4, m.CompleteEviction(18, 8, target));
        for (long p = 20; p < 24; p++)
        {
            Assert.Equal(target, m.GetResidency(p));
            Assert.True(m.GetPageBytes(p).IndexOfAnyExcept((byte)0) < 0, "evicted page must read as zeroes (RAM returned)");
        }
        Assert.Equal(PageResidency.Zero, m.GetResidency(18));
        Assert.Equal(0, m.ResidentPages);
    }

    [Fact]
    public void Cancelled_eviction_keeps_the_page_and_its_bytes()
    {
        using var m = new GuestMemory(Size);
        m.TryInstall(5, PageResidency.Zero, Filled(9));
        Assert.Equal(1, m.BeginEviction(5, 1));
        Assert.Equal(1, m.CancelEviction(5, 1));
        Assert.Equal(PageResidency.Resident, m.GetResidency(5));
        Assert.Equal(9, m.GetPageBytes(5)[4095]);
        Assert.Equal(1, m.ResidentPages);
    }

    [Fact]
    public void Eviction_of_a_non_resident_page_moves_nothing()
    {
        using var m = new GuestMemory(Size);
        Assert.Equal(0, m.BeginEviction(5, 1));
        Assert.False(m.TryDiscard(5, PageResidency.Ballooned));
        Assert.Equal(PageResidency.Zero, m.GetResidency(5));
    }

    [Fact]
    public void Transition_through_resident_states_is_refused()
    {
        using var m = new GuestMemory(Size);
        Assert.Throws<ArgumentException>(() => m.TryTransition(1, PageResidency.Zero, PageResidency.Resident));
        Assert.Throws<ArgumentException>(() => m.TryTransition(1, PageResidency.Resident, PageResidency.Swapped));
        Assert.Throws<ArgumentException>(() => m.CompleteEviction(1, 1, PageResidency.Resident));
        Assert.False(m.TryTransition(1, PageResidency.Swapped, PageResidency.Remote));
    }

    [Fact]
    public void Every_non_resident_state_reaches_every_other()
    {
        using var m = new GuestMemory(Size);
        PageResidency[] parked = [PageResidency.Zero, PageResidency.Swapped, PageResidency.Remote, PageResidency.Ballooned];
        foreach (var from in parked)
            foreach (var to in parked)
            {
                if (from == to) continue;
                long p = 100 + (int)from * 10 + (int)to;
                if (from != PageResidency.Zero) Assert.True(m.TryTransition(p, PageResidency.Zero, from));
                Assert.True(m.TryTransition(p, from, to));
                Assert.Equal(to, m.GetResidency(p));
            }
        Assert.Equal(0, m.ResidentPages);
    }

    [Fact]
    public async Task Counts_stay_exact_when_threads_on_every_core_move_pages_in_and_out_of_a_residency()
    {
        using var m = new GuestMemory(Size);
        var threads = Math.Max(4, Environment.ProcessorCount * 2);
        // Pages enter Swapped on one set of threads and leave it on another, so on several cores a page is counted in
        // on one processor's counts and out on another's.
        async Task Move(PageResidency from, PageResidency to) => await Task.WhenAll(Enumerable.Range(0, threads).Select(t => Task.Factory.StartNew(() =>
        {
            for (long p = t; p < m.PageCount; p += threads) Assert.True(m.TryTransition(p, from, to), $"page {p} was not {from}");
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)));

        await Move(PageResidency.Zero, PageResidency.Swapped);
        Assert.Equal(m.PageCount, m.CountOf(PageResidency.Swapped));
        Assert.Equal(0, m.CountOf(PageResidency.Zero));
        await Move(PageResidency.Swapped, PageResidency.Remote);

        var scanned = m.CountByResidency();
        foreach (var r in Enum.GetValues<PageResidency>()) Assert.Equal(scanned[(int)r], m.CountOf(r));
        Assert.Equal(m.PageCount, m.CountOf(PageResidency.Remote));
    }

    [Fact]
    public void A_fresh_destination_marks_every_page_remote_in_one_call()
    {
        using var m = new GuestMemory(Size);
        m.TryInstall(0, PageResidency.Zero, Filled(1));
        Assert.Equal(m.PageCount - 1, m.TryTransitionRange(0, m.PageCount, PageResidency.Zero, PageResidency.Remote));
        Assert.Equal(m.PageCount - 1, m.CountOf(PageResidency.Remote));
        Assert.Equal(1, m.CountOf(PageResidency.Resident));
        Assert.Equal(0, m.CountOf(PageResidency.Zero));
        Assert.Throws<ArgumentOutOfRangeException>(() => m.TryTransitionRange(1, m.PageCount, PageResidency.Zero, PageResidency.Remote));
    }

    [Fact]
    public void Observer_hears_every_page_that_becomes_resident()
    {
        using var m = new GuestMemory(Size);
        var seen = new List<(long, PageResidency)>();
        m.SetResidencyObserver(new Recorder(seen));
        m.TryTransition(7, PageResidency.Zero, PageResidency.Swapped);
        m.TryInstall(7, PageResidency.Swapped, Filled(1));
        m.TryInstall(8, PageResidency.Zero, Filled(1));
        Assert.Equal([(7L, PageResidency.Swapped), (8L, PageResidency.Zero)], seen);
    }

    [Fact]
    public void Budget_view_reports_over_budget()
    {
        using var m = new GuestMemory(new GuestMemoryOptions { SizeBytes = Size, ResidentBudgetPages = 2 });
        for (long p = 0; p < 3; p++) m.TryInstall(p, PageResidency.Zero, Filled(1));
        Assert.True(m.IsOverBudget);
        m.TryDiscard(0, PageResidency.Swapped);
        Assert.False(m.IsOverBudget);
    }

    [Fact]
    public void Disposed_memory_refuses_access()
    {
        var m = new GuestMemory(Size);
        m.Dispose();
        Assert.Throws<ObjectDisposedException>(() => m.GetPageBytes(0));
        m.Dispose();
    }

    [Fact]
    public void Resident_pages_are_real_rss_and_eviction_gives_it_back()
    {
        if (!OperatingSystem.IsLinux()) return;
        using var m = new GuestMemory(64L << 20);
        long before = RssKiB();
        for (long p = 0; p < m.PageCount; p++) m.TryInstall(p, PageResidency.Zero, Filled(3));
        long full = RssKiB();
        m.BeginEviction(0, (int)m.PageCount);
        m.CompleteEviction(0, (int)m.PageCount, PageResidency.Swapped);
        long after = RssKiB();
        // 64 MiB went in and came back out; allow slack for the runtime's own allocations.
        Assert.True(full - before > 48 * 1024, $"RSS grew only {full - before} KiB after touching 64 MiB");
        Assert.True(full - after > 48 * 1024, $"RSS dropped only {full - after} KiB after evicting 64 MiB");
    }

    private static long RssKiB()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line.AsSpan(6).Trim().TrimEnd("kB").Trim(), System.Globalization.CultureInfo.InvariantCulture);
        throw new InvalidOperationException("no VmRSS");
    }

    private static byte[] Filled(byte b)
    {
        var a = new byte[Page.Size];
        a.AsSpan().Fill(b);
        return a;
    }

    private sealed class Recorder(List<(long, PageResidency)> seen) : IResidencyObserver
    {
        public void OnResident(PageNumber page, PageResidency from)
        {
            lock (seen) seen.Add((page.Value, from));
        }
    }
}
