using MigrationFabric.Memory.Metrics;
using MigrationFabric.Memory.Tests.Support;
using Xunit;

namespace MigrationFabric.Memory.Tests.Metrics;

public class LatencyHistogramTests
{
    [Fact]
    public void Percentiles_are_within_the_bucket_resolution()
    {
        var h = new LatencyHistogram();
        for (long v = 1; v <= 100_000; v++) h.Record(v * 10);
        Assert.Equal(100_000, h.Count);
        Assert.InRange(h.PercentileNanoseconds(0.5), 500_000 * 0.94, 500_000 * 1.07);
        Assert.InRange(h.PercentileNanoseconds(0.99), 990_000 * 0.94, 990_000 * 1.07);
        Assert.Equal(1_000_000, h.MaxNanoseconds);
        Assert.Equal(1_000_000, h.PercentileNanoseconds(1));
        Assert.InRange(h.MeanNanoseconds, 500_004, 500_006);
    }

    [Fact]
    public void Small_values_are_exact_and_empty_is_zero()
    {
        var h = new LatencyHistogram();
        Assert.Equal(0, h.PercentileNanoseconds(0.99));
        h.Record(3);
        h.Record(-5);
        Assert.Equal(3, h.PercentileNanoseconds(1));
        Assert.Equal(0, h.PercentileNanoseconds(0.5));
        Assert.Throws<ArgumentOutOfRangeException>(() => h.PercentileNanoseconds(1.5));
        h.Reset();
        Assert.Equal(0, h.Count);
    }

    [Fact]
    public async Task Concurrent_recording_loses_no_sample()
    {
        var h = new LatencyHistogram();
        var ts = Enumerable.Range(0, 4).Select(_ => VcpuThread.Start(() => { for (int i = 0; i < 50_000; i++) h.Record(i); })).ToArray();
        await Task.WhenAll(ts).WaitAsync(VcpuThread.Generous);
        Assert.Equal(200_000, h.Count);
    }
}
