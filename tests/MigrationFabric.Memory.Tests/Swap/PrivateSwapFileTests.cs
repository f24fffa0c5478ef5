using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Swap;
using Xunit;

namespace MigrationFabric.Memory.Tests.Swap;

public sealed class PrivateSwapFileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mf-swap-test-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static byte[] Pattern(int seed, int pages = 1)
    {
        var bytes = new byte[pages * Page.Size];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    [Fact]
    public void Pages_read_back_byte_exact_from_their_slots_and_unwritten_slots_are_zero()
    {
        using var swap = PrivateSwapFile.Create(Path.Combine(_dir, "vm.swap"), slotCount: 64);
        Assert.Equal(64L * Page.Size, new FileInfo(swap.Path).Length);
        for (var slot = 0; slot < 64; slot += 3)
            swap.Write(slot, Pattern(slot));
        var buffer = new byte[Page.Size];
        for (var slot = 0; slot < 64; slot++)
        {
            swap.Read(slot, buffer);
            Assert.Equal(slot % 3 == 0 ? Pattern(slot) : new byte[Page.Size], buffer);
        }
    }

    [Fact]
    public void Runs_of_slots_round_trip_and_overwrite_in_place()
    {
        using var swap = PrivateSwapFile.Create(Path.Combine(_dir, "vm.swap"), slotCount: 32);
        swap.WriteRun(8, 4, Pattern(1, 4));
        var second = Pattern(2);
        swap.Write(9, second);
        var expected = Pattern(1, 4);
        second.CopyTo(expected, Page.Size);
        var run = new byte[4 * Page.Size];
        swap.ReadRun(8, 4, run);
        Assert.Equal(expected, run);
    }

    [Fact]
    public async Task Async_reads_and_writes_round_trip_and_honour_cancellation()
    {
        using var swap = PrivateSwapFile.Create(Path.Combine(_dir, "vm.swap"), slotCount: 16);
        var tasks = new List<Task>();
        for (var slot = 0; slot < 16; slot++)
            tasks.Add(swap.WriteAsync(slot, Pattern(100 + slot)).AsTask());
        await Task.WhenAll(tasks);
        var buffer = new byte[Page.Size];
        for (var slot = 0; slot < 16; slot++)
        {
            await swap.ReadAsync(slot, buffer);
            Assert.Equal(Pattern(100 + slot), buffer);
        }
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => swap.ReadAsync(0, buffer, cancelled.Token).AsTask());
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => swap.WriteAsync(0, buffer, cancelled.Token).AsTask());
    }

    [Fact]
    public void A_path_that_cannot_be_created_gets_an_error_naming_it()
    {
        var bad = Path.Combine(_dir, "no-such-dir", "vm.swap");
        var ex = Assert.Throws<SwapFileException>(() => PrivateSwapFile.Create(bad, 16));
        Assert.Contains(bad, ex.Message);
        Assert.IsType<DirectoryNotFoundException>(ex.InnerException);
    }

    [Fact]
    public void An_existing_file_is_never_overwritten()
    {
        var path = Path.Combine(_dir, "taken.swap");
        File.WriteAllText(path, "someone else's data");
        var ex = Assert.Throws<SwapFileException>(() => PrivateSwapFile.Create(path, 16));
        Assert.Contains(path, ex.Message);
        Assert.Equal("someone else's data", File.ReadAllText(path));
    }

    [Fact]
    public void A_swap_file_larger_than_the_disk_fails_at_creation_and_leaves_nothing_behind()
    {
        // int.MaxValue slots is 8 TiB: more than any disk this suite runs on, less than ext4's/xfs's file size limit.
        var path = Path.Combine(_dir, "huge.swap");
        var ex = Assert.Throws<SwapFileException>(() => PrivateSwapFile.Create(path, int.MaxValue));
        Assert.Contains(path, ex.Message);
        Assert.Contains(((long)int.MaxValue * Page.Size).ToString(), ex.Message);
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void Bad_slots_buffers_and_use_after_dispose_are_rejected()
    {
        var swap = PrivateSwapFile.Create(Path.Combine(_dir, "vm.swap"), slotCount: 4);
        var page = new byte[Page.Size];
        Assert.Contains("0..3", Assert.Throws<ArgumentOutOfRangeException>(() => swap.Write(4, page)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => swap.Read(-1, page));
        Assert.Contains("4096", Assert.Throws<ArgumentException>(() => swap.Write(0, new byte[100])).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => swap.WriteRun(2, 3, new byte[3 * Page.Size]));
        Assert.Throws<ArgumentException>(() => PrivateSwapFile.Create(" ", 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => PrivateSwapFile.Create(Path.Combine(_dir, "zero.swap"), 0));
        var path = swap.Path;
        swap.Dispose();
        Assert.False(File.Exists(path));
        Assert.Throws<ObjectDisposedException>(() => swap.Read(0, page));
    }

    [Fact]
    public void Slot_allocator_hands_out_each_run_once_and_rejects_double_free()
    {
        var allocator = new SwapSlotAllocator(runCount: 3, slotsPerRun: 256);
        Assert.True(allocator.TryAllocate(out var a));
        Assert.True(allocator.TryAllocate(out var b));
        Assert.True(allocator.TryAllocate(out var c));
        Assert.Equal([0, 1, 2], new[] { a, b, c });
        Assert.Equal(512, allocator.FirstSlot(2));
        Assert.False(allocator.TryAllocate(out _));
        allocator.Free(b);
        Assert.Equal(1, allocator.FreeRuns);
        Assert.Throws<InvalidOperationException>(() => allocator.Free(b));
        Assert.Throws<ArgumentOutOfRangeException>(() => allocator.Free(3));
        Assert.True(allocator.TryAllocate(out var again));
        Assert.Equal(b, again);
    }
}
