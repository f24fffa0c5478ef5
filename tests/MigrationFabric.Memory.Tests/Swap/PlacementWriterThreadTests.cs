using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Swap;
using Xunit;

namespace MigrationFabric.Memory.Tests.Swap;

/// <summary>VMemDirect's placement writers: threads of their own that ask the scheduler for a short slice.</summary>
public sealed class PlacementWriterThreadTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mf-writer-test-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static bool KernelReportsSlices(out string why)
    {
        why = "";
        if (!OperatingSystem.IsLinux()) { why = "not Linux"; return false; }
        if (SchedulerSlice.OfCurrentThread() is null) { why = "this kernel's /proc/thread-self/sched has no se.slice (EEVDF custom slices came in Linux 6.12)"; return false; }
        return true;
    }

    [Fact]
    public void A_thread_gets_the_slice_it_asks_for()
    {
        if (!KernelReportsSlices(out var why))
        {
            Console.WriteLine($"SKIPPED: {why}.");
            return;
        }
        TimeSpan? got = null;
        string? refusal = "not run";
        var thread = new Thread(() =>
        {
            refusal = SchedulerSlice.TrySetForCurrentThread(TimeSpan.FromMilliseconds(0.3));
            got = SchedulerSlice.OfCurrentThread();
        });
        thread.Start();
        thread.Join();

        Assert.Null(refusal);
        Assert.Equal(TimeSpan.FromMilliseconds(0.3), got);
    }

    [Theory]
    [InlineData(0.05)]
    [InlineData(101)]
    public void A_slice_outside_the_kernels_bounds_is_refused(double ms)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => SchedulerSlice.TrySetForCurrentThread(TimeSpan.FromMilliseconds(ms)));
        var e = Assert.Throws<ArgumentException>(() => new PrivateVirtualMemoryOptions { PlacementWriterSlice = TimeSpan.FromMilliseconds(ms) }.Validate(1024));
        Assert.Contains("PlacementWriterSlice", e.Message);
    }

    [Fact]
    public async Task Each_placement_writer_is_a_named_thread_of_its_own_with_the_configured_slice()
    {
        if (!KernelReportsSlices(out var why))
        {
            Console.WriteLine($"SKIPPED: {why}.");
            return;
        }
        using var memory = new GuestMemory(4L << 20);
        // A slice no other test's writers use, so their threads are told apart.
        var slice = TimeSpan.FromMilliseconds(0.7);
        await using var pvm = new PrivateVirtualMemory(memory, new PrivateVirtualMemoryOptions
        {
            SharePages = 256, ChunkPages = 64, PlacementWriters = 3, PlacementWriterSlice = slice,
            SwapFilePath = Path.Combine(_dir, "vm.swap"), ScanAccessBitsPeriodically = false,
        });

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        int writers;
        while ((writers = WritersWithSlice(slice)) < 3 && DateTime.UtcNow < deadline) await Task.Delay(20);

        Assert.Equal(3, writers);
        Assert.Null(pvm.PlacementWriterSliceRefusal);
    }

    // Threads named mf-pvm-writer-N whose se.slice is the given one.
    private static int WritersWithSlice(TimeSpan slice)
    {
        var n = 0;
        foreach (var task in Directory.EnumerateDirectories("/proc/self/task"))
        {
            try
            {
                if (!File.ReadAllText(Path.Combine(task, "comm")).StartsWith("mf-pvm-writer-", StringComparison.Ordinal)) continue;
                if (SchedulerSlice.Read(Path.Combine(task, "sched")) == slice) n++;
            }
            catch (IOException)
            {
                // The thread exited meanwhile.
            }
        }
        return n;
    }
}
