using MigrationFabric.Memory.Metrics;
using Xunit;

namespace MigrationFabric.Memory.Tests.Metrics;

public sealed class StripedCountersTests
{
    [Fact]
    public async Task Threads_on_every_core_adding_at_once_lose_no_count()
    {
        var counters = new StripedCounters(3);
        var threads = Math.Max(4, Environment.ProcessorCount * 2);
        const int each = 200_000;
        await Task.WhenAll(Enumerable.Range(0, threads).Select(t => Task.Factory.StartNew(() =>
        {
            for (var i = 0; i < each; i++)
            {
                counters.Increment(0);
                counters.Add(1, 3);
                // Counted in on this thread's core, moved out again later on whichever core it then runs on.
                counters.Move(0, 2);
            }
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)));

        Assert.Equal(0, counters.Read(0));
        Assert.Equal(3L * threads * each, counters.Read(1));
        Assert.Equal((long)threads * each, counters.Read(2));
    }

    [Fact]
    public void A_count_moved_out_on_another_stripe_still_sums_right()
    {
        var counters = new StripedCounters(2);
        counters.Add(0, 5);
        counters.Decrement(0);
        counters.Move(0, 1);
        Assert.Equal(3, counters.Read(0));
        Assert.Equal(1, counters.Read(1));
    }

    [Fact]
    public void Counters_outside_the_set_are_refused_by_number()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new StripedCounters(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new StripedCounters(17));
        var counters = new StripedCounters(2);
        Assert.Contains("counters 0 to 1", Assert.Throws<ArgumentOutOfRangeException>(() => counters.Increment(2)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => counters.Read(-1));
        counters.Increment(0);
        Assert.Throws<ArgumentOutOfRangeException>(() => counters.Move(0, 2));
        Assert.Equal(1, counters.Read(0));
    }
}
