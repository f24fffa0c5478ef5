namespace MigrationFabric.Cli.Tests;

using System.Xml.Linq;
using MigrationFabric.Cli.Bench;
using MigrationFabric.Cli.Commands;
using MigrationFabric.Memory.Workloads;
using MigrationFabric.Migration.PrivateMemory.Bench;
using Spectre.Console;
using Xunit;

/// <summary>mf bench vmemdirect: its option errors, the report's ratios and the SVG it writes.</summary>
public sealed class BenchCommandTests
{
    private static Task<InProcessMf.Result> Mf(params string[] args) => InProcessMf.RunAsync(null, null, args);

    // A 16 MiB VM into a 4 MiB budget, idle, with the kinds and flags given; `check` sees the result and the --out directory, which is deleted after.
    private static async Task TinyRunAsync(string kinds, string[] flags, Action<InProcessMf.Result, string> check)
    {
        var dir = Path.Combine(Path.GetTempPath(), $"mf-bench-test-{Guid.NewGuid():N}");
        try
        {
            string[] args = ["bench", "vmemdirect", "--size-mib", "16", "--budget-mib", "4", "--kinds", kinds, "--workloads", "idle", "--measure-seconds", "0.3", "--emulator-mib", "1", .. flags, "--out", dir];
            var result = await Mf(args);
            Assert.True(result.Exit == 0, result.Err);
            check(result, dir);
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData("--budget-mib", "1024", "--budget-mib")]
    [InlineData("--kinds", "naive,qemu", "'qemu'")]
    [InlineData("--workloads", "busy", "'busy'")]
    [InlineData("--measure-seconds", "0", "--measure-seconds")]
    [InlineData("--kv-after-seconds", "-1", "--kv-after-seconds")]
    [InlineData("--link-mbps", "-5", "--link-mbps")]
    [InlineData("--emulator-mib", "256", "--emulator-mib")]
    [InlineData("--hot-reserve-mib", "200", "--hot-reserve-mib")]
    [InlineData("--data-channel", "udp", "--data-channel")]
    [InlineData("--repeat", "0", "--repeat")]
    [InlineData("--repeat", "21", "--repeat")]
    public async Task A_wrong_option_exits_2_with_a_message_naming_it_and_runs_nothing(string flag, string value, string named)
    {
        var (exit, _, err) = await Mf("bench", "vmemdirect", "--size-mib", "1024", flag, value);
        Assert.Equal(2, exit);
        Assert.Contains(named, err);
    }

    [Fact]
    public void Kinds_and_workloads_take_commas_or_separate_words()
    {
        var o = BenchCommand.Parse(64, 16, ["naive,ideal", "split"], ["kv"], 1, 1, null, directIo: true, linkMbps: 0, emulatorMib: 2);
        Assert.Equal(["naive", "ideal", "split"], o.Kinds);
        Assert.Equal(["kv"], o.Workloads);
        Assert.True(o.DirectIo);
        Assert.Equal(16, o.BudgetMib);
        Assert.Equal(0, o.LinkMbps);
        Assert.Equal(2, o.DeviceEmulatorMib);
    }

    [Fact]
    public Task A_tiny_run_writes_the_table_and_a_well_formed_svg() =>
        TinyRunAsync("vmem-direct,ideal", [], (r, dir) =>
        {
            var (_, output, err) = r;
            Assert.Contains("| idle | vmem-direct |", output);
            Assert.Contains("Migration link: link capped at", output);
            Assert.Contains("swap write rate", output);
            Assert.Contains("| idle | ideal | ", output);
            // The default channel is TCP, and the ideal destination's whole memory was preallocated before its migration.
            Assert.Matches(@"\| idle \| ideal \| Tcp \([1-9][0-9]* TCP\) \| 1: ", output);
            Assert.Contains("Data channel: Tcp", output);
            Assert.Matches(@"\| idle \| ideal \| [0-9.]+ \(16 MiB\) \| ", output);
            Assert.Contains("- vmem-direct: the VM's fixed physical share", output);
            // Its share, 4 MiB less a 1 MiB free reserve, and its 16 staging buffers of one 1 MiB chunk.
            Assert.Matches(@"\| idle \| vmem-direct \| [0-9.]+ \(19 MiB\) \| ", output);
            Assert.Contains("blocks written when the file is created", output);
            // VMemDirect's swap writes went through its writers' rings (where the kernel has io_uring), and the CPU column splits the writers out.
            var ringsOff = File.Exists("/proc/sys/kernel/io_uring_disabled") && File.ReadAllText("/proc/sys/kernel/io_uring_disabled").Trim() != "0";
            Assert.Matches(ringsOff ? @"pages at [^,]+, 0 of them through io_uring\)" : @"pages at [^,]+, [1-9][0-9,]* of them through io_uring\)", output);
            if (ringsOff) Assert.Contains("placement writes use pwrite", err);
            Assert.Matches(@"\| idle \| vmem-direct \| Tcp .* \| [0-9.]+ \([0-9.]+\) / [0-9.]+ \|", output);
            Assert.DoesNotContain("--no-io-uring", output);
            Assert.Contains("warm-up ideal", err);
            Assert.Contains("VMemDirect migration time vs ideal", output);
            Assert.Contains("[2/2] idle ideal", err);
            var svg = XDocument.Parse(File.ReadAllText(Path.Combine(dir, "vmemdirect.svg")));
            Assert.Equal("svg", svg.Root!.Name.LocalName);
            Assert.Contains("vmemdirect.svg", File.ReadAllText(Path.Combine(dir, "vmemdirect.md")));
        });

    [Fact]
    public Task No_io_uring_writes_vmem_directs_swap_pages_with_pwrite_and_says_so() =>
        TinyRunAsync("vmem-direct", ["--no-io-uring"], (r, _) =>
        {
            var output = r.Out;
            Assert.Contains("placement writers writing with pwrite (--no-io-uring)", output);
            Assert.Matches(@"pages at [^,]+, 0 of them through io_uring\)", output);
        });

    [Fact]
    public Task Repeat_runs_each_kind_again_in_turn_and_the_ratios_say_how_many_repetitions_met_them() =>
        TinyRunAsync("vmem-direct,ideal", ["--repeat", "2"], (r, dir) =>
        {
            var (_, output, err) = r;
            // The second repetition starts one kind further along.
            Assert.Contains("[1/4] idle vmem-direct (repetition 1/2)", err);
            Assert.Contains("[3/4] idle ideal (repetition 2/2)", err);
            Assert.Contains("[4/4] idle vmem-direct (repetition 2/2)", err);
            foreach (var row in new[] { "| idle #1 | vmem-direct |", "| idle #1 | ideal |", "| idle #2 | vmem-direct |", "| idle #2 | ideal |" })
                Assert.Contains(row, output);
            Assert.Matches(@"\| idle: VMemDirect migration time vs ideal \| [0-9.]+% (faster|slower) \(median of 2: [0-9.]+% (faster|slower); [0-9.]+% (faster|slower)\) \| within 4% \| (yes|no) \([012] of 2\) \|", output);
            Assert.Contains("median-time run of 2", File.ReadAllText(Path.Combine(dir, "vmemdirect.svg")));
        });

    [Fact]
    public void With_repetitions_the_verdict_is_on_the_median_of_each_repetitions_figure()
    {
        VMemDirectRun Run(string kind, double ms, int rep, double downtimeMs = 10) => new(kind, "active", TimeSpan.FromMilliseconds(ms), TimeSpan.FromMilliseconds(downtimeMs), 3, 1, 1,
            1e9, null, null, null, Array.Empty<ThroughputSample>(), TimeSpan.Zero, TimeSpan.Zero, 0, Repetition: rep);
        // Repetition 2's VMemDirect run was slowed (20% behind ideal); the other two are within 4%: the median is met, 2 of 3.
        var ratios = VMemDirectReport.Ratios([
            Run("vmem-direct", 1010, 1), Run("ideal", 1000, 1, 30),
            Run("ideal", 1000, 2), Run("vmem-direct", 1200, 2, 50),
            Run("vmem-direct", 1020, 3), Run("ideal", 1000, 3)]);
        var ideal = Assert.Single(ratios, r => r.What == "active: VMemDirect migration time vs ideal");
        Assert.Equal("2.0% slower (median of 3: 1.0% slower; 20.0% slower; 2.0% slower)", ideal.Measured);
        Assert.True(ideal.Met);
        Assert.Equal((2, 3), (ideal.MetIn, ideal.Of));
        // Two of three slowed: the median is not met, however good the third.
        var worse = VMemDirectReport.Ratios([
            Run("vmem-direct", 1000, 1), Run("ideal", 1000, 1),
            Run("vmem-direct", 1100, 2), Run("ideal", 1000, 2),
            Run("vmem-direct", 1090, 3), Run("ideal", 1000, 3)]);
        var w = Assert.Single(worse, r => r.What == "active: VMemDirect migration time vs ideal");
        Assert.False(w.Met);
        Assert.Equal((1, 3), (w.MetIn, w.Of));
        // The representative run of each kind is its median-time one.
        var picked = VMemDirectReport.Representative([Run("ideal", 900, 1), Run("ideal", 1200, 2), Run("ideal", 1000, 3)]);
        Assert.Equal(3, Assert.Single(picked).Repetition);
    }

    [Fact]
    public void The_data_channel_is_tcp_by_default_grpc_on_request_in_any_case()
    {
        Assert.Equal(MigrationFabric.Migration.DataPlane.DataChannel.Tcp, BenchCommand.ParseDataChannel(null));
        Assert.Equal(MigrationFabric.Migration.DataPlane.DataChannel.Tcp, BenchCommand.ParseDataChannel("tcp"));
        Assert.Equal(MigrationFabric.Migration.DataPlane.DataChannel.Grpc, BenchCommand.ParseDataChannel("GRPC"));
        Assert.Contains("'quic'", Assert.Throws<UsageException>(() => BenchCommand.ParseDataChannel("quic")).Message);
    }

    [Fact]
    public void Svg_has_a_polyline_per_series_scaled_into_the_plot_and_bars_with_their_values()
    {
        var svg = new SvgChart("t <&> title")
            .Lines("ops", "s", "ops/s", [new SvgSeries("a", [(0, 0), (10, 100)]), new SvgSeries("b", [(0, 50), (10, 50)])], [(5, "resumed")])
            .Bars("time", "s", ["a", "b"], [new SvgBarGroup("idle", [1.5, double.NaN]), new SvgBarGroup("active", [3, 4])])
            .Render();
        var doc = XDocument.Parse(svg);
        XNamespace ns = "http://www.w3.org/2000/svg";
        var lines = doc.Descendants(ns + "polyline").ToList();
        Assert.Equal(2, lines.Count);
        // Series a rises from the bottom-left corner to the top-right: its second point is higher (smaller y) and further right.
        var pts = lines[0].Attribute("points")!.Value.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(p => p.Split(',').Select(double.Parse).ToArray()).ToList();
        Assert.True(pts[1][0] > pts[0][0] && pts[1][1] < pts[0][1]);
        var bars = doc.Descendants(ns + "rect").Where(r => r.Attribute("x") is not null && r.Attribute("width")?.Value != "14").ToList();
        Assert.Equal(3, bars.Count); // the NaN bar is left out
        Assert.Contains(doc.Descendants(ns + "text"), t => t.Value == "1.5");
        Assert.Contains(doc.Descendants(ns + "text"), t => t.Value == "t <&> title");
    }

    [Fact]
    public void Svg_refuses_what_it_cannot_draw()
    {
        Assert.Throws<InvalidOperationException>(() => new SvgChart("empty").Render());
        Assert.Throws<ArgumentException>(() => new SvgChart("x").Lines("l", "x", "y", []));
        Assert.Throws<ArgumentException>(() => new SvgChart("x").Lines("l", "x", "y", [new SvgSeries("a", [])]));
        Assert.Throws<ArgumentException>(() => new SvgChart("x").Lines("l", "x", "y", [new SvgSeries("a", [(0, double.PositiveInfinity)])]));
        Assert.Throws<ArgumentException>(() => new SvgChart("x").Bars("b", "y", ["a", "b"], [new SvgBarGroup("g", [1])]));
        Assert.Throws<ArgumentException>(() => new SvgChart("x").Bars("b", "y", ["a"], [new SvgBarGroup("g", [-1])]));
    }

    [Theory]
    [InlineData(0.7, 1)]
    [InlineData(3, 5)]
    [InlineData(123_000, 200_000)]
    [InlineData(0, 1)]
    public void Axis_tops_are_round_numbers_at_or_above_the_largest_value(double max, double top) =>
        Assert.Equal(top, SvgChart.NiceCeiling(max), 9);

    [Fact]
    public void Ratios_state_the_papers_targets_and_whether_each_is_met()
    {
        VMemDirectRun Run(string kind, double ms, double gbps) => new(kind, "active", TimeSpan.FromMilliseconds(ms), TimeSpan.FromMilliseconds(ms / 100), 3, 1, 1,
            gbps * 1e9, null, null, null, Array.Empty<ThroughputSample>(), TimeSpan.Zero, TimeSpan.Zero, 0);
        var ratios = VMemDirectReport.Ratios([Run("naive", 1000, 1), Run("vmem-direct", 400, 4), Run("split", 500, 1), Run("ideal", 390, 20)]);
        Assert.Contains(ratios, r => r.What == "active: VMemDirect migration time vs naive" && r.Measured == "60.0% faster" && r.Met);
        Assert.Contains(ratios, r => r.What == "active: membench after, VMemDirect / naive" && r.Measured == "4.00x" && r.Met);
        Assert.Contains(ratios, r => r.What == "active: VMemDirect migration time vs ideal" && r.Measured == "2.6% slower" && r.Met);
        Assert.Contains(ratios, r => r.What == "active: VMemDirect migration time vs split" && r.Met);
        var noisy = VMemDirectReport.Ratios([Run("vmem-direct", 500, 1), Run("ideal", 1000, 1), Run("split", 400, 1)]);
        Assert.Contains(noisy, r => r.What == "active: VMemDirect migration time vs ideal" && r.Measured == "50.0% faster" && !r.Met);
        Assert.Contains(noisy, r => r.What == "active: VMemDirect migration time vs split" && r.Measured == "25.0% slower" && !r.Met);
        var slow = VMemDirectReport.Ratios([Run("naive", 1000, 1), Run("vmem-direct", 900, 1.5)]);
        Assert.Contains(slow, r => r.What == "active: VMemDirect migration time vs naive" && !r.Met);
        Assert.Contains(slow, r => r.What == "active: membench after, VMemDirect / naive" && !r.Met);
    }
}
