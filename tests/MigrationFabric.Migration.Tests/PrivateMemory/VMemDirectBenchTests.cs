using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.PrivateMemory.Bench;

namespace MigrationFabric.Migration.Tests.PrivateMemory;

public class VMemDirectBenchTests
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(120);

    private static VMemDirectBenchOptions Small() => new()
    {
        SizeMib = 16, BudgetMib = 4, MeasureAfter = TimeSpan.FromMilliseconds(300), KvBefore = TimeSpan.FromMilliseconds(600), KvAfter = TimeSpan.FromMilliseconds(800),
        DeviceEmulatorMib = 1,
    };

    [Theory]
    [InlineData(16, 16, "BudgetMib")]
    [InlineData(16, 2, "BudgetMib")]
    [InlineData(4, 2, "SizeMib")]
    public void Sizes_that_do_not_make_a_smaller_destination_are_refused_by_name(long size, long budget, string option)
    {
        var o = Small();
        o.SizeMib = size;
        o.BudgetMib = budget;
        var e = Assert.Throws<ArgumentException>(o.Validate);
        Assert.Contains(option, e.Message);
    }

    [Fact]
    public void Unknown_kinds_and_workloads_are_named_with_the_known_ones()
    {
        var o = Small();
        o.Kinds = ["naive", "qemu"];
        var e = Assert.Throws<ArgumentException>(o.Validate);
        Assert.Contains("'qemu'", e.Message);
        Assert.Contains("vmem-direct", e.Message);
        o = Small();
        o.Workloads = [];
        e = Assert.Throws<ArgumentException>(o.Validate);
        Assert.Contains("--workloads", e.Message);
        o = Small();
        o.SwapDirectory = "/nonexistent/mf-swap";
        e = Assert.Throws<ArgumentException>(o.Validate);
        Assert.Contains("SwapDirectory", e.Message);
        Assert.Throws<ArgumentException>(() => new VMemDirectBench(new VMemDirectBenchOptions { MaxRounds = 0 }));
    }

    [Theory]
    [InlineData(-1.0, "LinkMbps")]
    [InlineData(double.NaN, "--link-mbps")]
    public void A_negative_or_non_finite_link_cap_is_refused_by_name(double mbps, string named)
    {
        var o = Small();
        o.LinkMbps = mbps;
        Assert.Contains(named, Assert.Throws<ArgumentException>(o.Validate).Message);
    }

    [Fact]
    public void A_hot_reserve_over_half_the_budget_is_refused_by_name()
    {
        var o = Small();
        o.HotReserveMib = o.BudgetMib / 2 + 1;
        Assert.Contains("--hot-reserve-mib", Assert.Throws<ArgumentException>(o.Validate).Message);
    }

    [Fact]
    public void An_emulator_as_large_as_the_budget_is_refused_by_name()
    {
        var o = Small();
        o.DeviceEmulatorMib = o.BudgetMib;
        Assert.Contains("--emulator-mib", Assert.Throws<ArgumentException>(o.Validate).Message);
        o.DeviceEmulatorMib = -1;
        Assert.Contains("DeviceEmulatorMib", Assert.Throws<ArgumentException>(o.Validate).Message);
    }

    [Fact]
    public void The_link_is_the_given_cap_uncapped_at_0_or_the_papers_ratio_times_the_measured_swap_write_rate()
    {
        var o = Small();
        o.LinkMbps = 80;
        Assert.Equal(10e6, new VMemDirectBench(o).Link.BytesPerSecond);
        o.LinkMbps = 0;
        Assert.Null(new VMemDirectBench(o).Link.BytesPerSecond);
        Assert.Contains("uncapped", new VMemDirectBench(o).Link.Describe());
        o.LinkMbps = null;
        var derived = new VMemDirectBench(o).Link;
        var disk = Assert.NotNull(derived.MeasuredSwapWriteBytesPerSecond);
        Assert.True(disk > 0);
        Assert.Equal(disk * 1250 / 2700, Assert.NotNull(derived.BytesPerSecond), 3);
        Assert.Contains("2700 MB/s", derived.Describe());
    }

    [Fact]
    public void The_swap_write_probe_measures_a_positive_rate_and_refuses_an_empty_probe()
    {
        Assert.True(SwapWriteProbe.MeasureBytesPerSecond(null, directIo: false, mib: 2, passes: 1) > 0);
        Assert.Throws<ArgumentOutOfRangeException>(() => SwapWriteProbe.MeasureBytesPerSecond(null, false, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => SwapWriteProbe.MeasureBytesPerSecond(null, false, 1, passes: 0));
    }

    [Fact]
    public async Task Key_value_store_continues_at_a_vmem_direct_destination_with_its_timeline_before_and_after_the_resume()
    {
        var bench = new VMemDirectBench(Small());
        var phases = new List<string>();
        var run = await bench.RunOneAsync("vmem-direct", "kv", new SyncProgress(phases), CancellationToken.None).WaitAsync(Long);

        Assert.Equal(4096, run.PagesVerified);
        Assert.Equal(0, run.KvCorruptReads);
        Assert.True(run.Resumed > run.MigrationStart, $"resumed at {run.Resumed}, migration started at {run.MigrationStart}");
        Assert.Contains(run.Timeline, s => s.Elapsed <= run.MigrationStart);
        Assert.Contains(run.Timeline, s => s.Elapsed > run.Resumed && s.PerSecond > 0);
        // Direct placement: the share took what fit, the swap the rest, and nothing was paged while pages arrived.
        var d = Assert.NotNull(run.DuringMigration);
        Assert.True(d.PlacedInMemory > 0 && d.PlacedInSwap > 0, $"placed {d.PlacedInMemory} in memory, {d.PlacedInSwap} in swap");
        Assert.Equal(0, d.PageOuts);
        Assert.Null(run.MembenchAfterBytesPerSecond);
        Assert.Contains(phases, p => p.Contains("migrating", StringComparison.Ordinal));
        // Read at the start and at the resume: the source's pages were sent and hashed in between.
        if (OperatingSystem.IsLinux()) Assert.True(Assert.NotNull(run.CpuToResume).Fabric > TimeSpan.Zero, $"{run.CpuToResume}");
    }

    [Theory]
    [InlineData("naive")]
    [InlineData("split")]
    [InlineData("ideal")]
    public async Task Each_baseline_moves_an_idle_vm_verified_and_measures_the_memory_benchmark_after(string kind)
    {
        var run = await new VMemDirectBench(Small()).RunOneAsync(kind, "idle", null, CancellationToken.None).WaitAsync(Long);

        Assert.Equal(kind, run.Kind);
        Assert.Equal(4096, run.PagesVerified);
        Assert.True(run.MembenchAfterBytesPerSecond > 0);
        Assert.Empty(run.Timeline);
        Assert.NotNull(run.RoundDetails);
        Assert.Equal(run.Rounds, run.RoundDetails.Count);
        if (kind == "naive")
        {
            Assert.True(Assert.NotNull(run.DuringMigration).PageOuts > 0, "naive swap pages out once its share is full");
            Assert.True(run.EmulatorPageIn > TimeSpan.Zero, "naive's device emulator was paged in at the resume");
        }
        else Assert.Null(run.EmulatorPageIn);
        if (kind == "split") Assert.NotNull(run.RemotePagesAfter);
    }

    [Theory]
    [InlineData("split", DataChannel.Tcp)]
    [InlineData("vmem-direct", DataChannel.Tcp)]
    [InlineData("ideal", DataChannel.Grpc)]
    public async Task A_run_moves_its_pages_on_the_chosen_data_channel_at_every_host_it_streams_to(string kind, DataChannel channel)
    {
        var o = Small();
        o.DataChannel = channel;
        var run = await new VMemDirectBench(o).RunOneAsync(kind, "idle", null, CancellationToken.None).WaitAsync(Long);

        Assert.Equal(4096, run.PagesVerified);
        Assert.Equal(channel, run.DataChannel);
        if (channel == DataChannel.Tcp)
        {
            // Seen at the hosts while the pages moved, not just what was asked for: the destination (and split's sub-host) served TCP data channels.
            Assert.True(run.TcpChannelsAtDestination > 0, "the destination served no TCP data channel");
            if (kind == "split") Assert.True(run.TcpChannelsAtSubHost > 0, "the sub-host served no TCP data channel");
        }
        else Assert.Equal((0, 0), (run.TcpChannelsAtDestination, run.TcpChannelsAtSubHost));
    }

    [Fact]
    public void The_default_data_channel_is_tcp_and_an_undefined_one_is_refused_by_name()
    {
        Assert.Equal(DataChannel.Tcp, new VMemDirectBenchOptions().DataChannel);
        var o = Small();
        o.DataChannel = (DataChannel)7;
        Assert.Contains("--data-channel", Assert.Throws<ArgumentException>(o.Validate).Message);
    }

    [Theory]
    [InlineData("ideal", 16L << 20)]
    [InlineData("vmem-direct", 19L << 20)]
    [InlineData("naive", -1L)]
    [InlineData("split", -1L)]
    public async Task Each_kind_preallocates_what_it_reserves_as_fixed_ram_before_its_migration(string kind, long bytes)
    {
        var run = await new VMemDirectBench(Small()).RunOneAsync(kind, "idle", null, CancellationToken.None).WaitAsync(Long);

        Assert.Equal(4096, run.PagesVerified);
        Assert.DoesNotContain("unknown", VMemDirectBench.PreallocationOf(kind));
        if (bytes < 0)
        {
            // Demand-paged by design: nothing is reserved ahead.
            Assert.Null(run.Preallocation);
            Assert.Equal(0, run.PreallocatedBytes);
            Assert.StartsWith("nothing", VMemDirectBench.PreallocationOf(kind));
        }
        else
        {
            Assert.NotNull(run.Preallocation);
            // ideal: the whole 16 MiB VM; VMemDirect: its 16 staging buffers of one 1 MiB chunk (the 16 MiB VM has exactly 16 chunks)
            // and the frames of its 4 MiB share less the free reserve (one 1 MiB chunk).
            Assert.True(run.PreallocatedBytes == bytes || !OperatingSystem.IsLinux(), $"preallocated {run.PreallocatedBytes} bytes, expected {bytes}");
        }
        var off = Small();
        off.Preallocate = false;
        var plain = await new VMemDirectBench(off).RunOneAsync(kind, "idle", null, CancellationToken.None).WaitAsync(Long);
        Assert.Null(plain.Preallocation);
        Assert.Equal(4096, plain.PagesVerified);
    }

    private sealed class SyncProgress(List<string> phases) : IProgress<string>
    {
        public void Report(string value)
        {
            lock (phases) phases.Add(value);
        }
    }
}
