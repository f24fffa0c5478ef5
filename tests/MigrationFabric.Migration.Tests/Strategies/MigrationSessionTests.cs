using MigrationFabric.Migration.Strategies;
using MigrationFabric.Migration.Tests.Support;

namespace MigrationFabric.Migration.Tests.Strategies;

public class MigrationSessionTests
{
    [Fact]
    public async Task The_switch_over_estimate_follows_the_latest_round_not_the_average_since_the_start()
    {
        await using var pair = await MigrationPair.CreateAsync(1 << 20);
        await using var session = MigrationSession.Create(pair.Job(), new PreCopyOptions(), "test");
        Assert.Equal(0, session.Bandwidth);

        // A first round held back by the destination (VMemDirect writing first copies to swap): 100 MB/s.
        session.MeasureRound(400_000_000, TimeSpan.FromSeconds(4));
        Assert.Equal(100e6, session.Bandwidth, 3);

        // Retransfers of hot pages land in memory at 300 MB/s: the remainder costs what this rate says, not the 109 MB/s average.
        session.MeasureRound(60_000_000, TimeSpan.FromMilliseconds(200));
        Assert.Equal(300e6, session.Bandwidth, 3);
        Assert.Equal(65536 * 4096 / 300e6, session.ExpectedDowntime(65536).TotalSeconds, 6);

        // Too short to measure, or nothing moved: the estimate stays.
        session.MeasureRound(4096, MigrationSession.ShortestMeasuredRound - TimeSpan.FromMilliseconds(1));
        session.MeasureRound(0, TimeSpan.FromSeconds(1));
        Assert.Equal(300e6, session.Bandwidth, 3);
    }
}
