using System.Runtime.InteropServices;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Swap;
using Xunit;

namespace MigrationFabric.Memory.Tests.Swap;

/// <summary>The placement writers' io_uring: writes from registered buffers, their errors, and the pager writing through it.</summary>
public sealed class IoUringTests : IDisposable
{
    private const int BufferPages = 16;
    private readonly string _dir = Directory.CreateTempSubdirectory("mf-iouring-test-").FullName;
    private readonly nint[] _buffers = new nint[2];

    public unsafe IoUringTests()
    {
        for (var i = 0; i < _buffers.Length; i++)
            _buffers[i] = (nint)NativeMemory.AlignedAlloc(BufferPages * Page.Size, Page.Size);
    }

    public unsafe void Dispose()
    {
        foreach (var b in _buffers) NativeMemory.AlignedFree((void*)b);
        Directory.Delete(_dir, recursive: true);
    }

    private unsafe Span<byte> Buffer(int index, int firstPage = 0, int pages = BufferPages) =>
        new((byte*)_buffers[index] + firstPage * Page.Size, pages * Page.Size);

    // io_uring exists on Linux unless kernel.io_uring_disabled says otherwise; where it is off, TryCreate must say so.
    private static bool RingsAvailable(out string why)
    {
        why = "";
        if (!OperatingSystem.IsLinux()) { why = "not Linux"; return false; }
        const string sysctl = "/proc/sys/kernel/io_uring_disabled";
        if (File.Exists(sysctl) && File.ReadAllText(sysctl).Trim() != "0") { why = $"{sysctl} is {File.ReadAllText(sysctl).Trim()}"; return false; }
        return true;
    }

    private IoUring CreateRing(int entries = 8)
    {
        var ring = IoUring.TryCreate(entries, _buffers, BufferPages * Page.Size, out var refusal);
        Assert.True(ring is not null, $"io_uring refused: {refusal}");
        Assert.Null(refusal);
        return ring;
    }

    [Fact]
    public void Writes_from_registered_buffers_land_at_their_offsets_through_direct_io()
    {
        if (!RingsAvailable(out var why))
        {
            Assert.Null(IoUring.TryCreate(8, _buffers, BufferPages * Page.Size, out var refusal));
            Assert.Contains("io_uring_setup", refusal);
            Console.WriteLine($"SKIPPED the write part: {why}.");
            return;
        }
        Random.Shared.NextBytes(Buffer(0));
        Random.Shared.NextBytes(Buffer(1));
        using var swap = PrivateSwapFile.Create(Path.Combine(_dir, "vm.swap"), 64, directIo: true);
        using var ring = CreateRing();

        // Three runs in one submission, from both buffers, out of order in the file.
        swap.PrepareWriteRun(ring, 1, 40, 4, Buffer(1, 2, 4));
        swap.PrepareWriteRun(ring, 0, 0, BufferPages, Buffer(0));
        swap.PrepareWriteRun(ring, 1, 20, 1, Buffer(1, 10, 1));
        Assert.Equal(3, ring.Prepared);
        ring.SubmitAndWait();
        Assert.Equal(0, ring.Prepared);

        var read = new byte[BufferPages * Page.Size];
        swap.ReadRun(0, BufferPages, read);
        Assert.True(read.AsSpan().SequenceEqual(Buffer(0)), "slots 0-15 differ from buffer 0");
        swap.ReadRun(40, 4, read.AsSpan(0, 4 * Page.Size));
        Assert.True(read.AsSpan(0, 4 * Page.Size).SequenceEqual(Buffer(1, 2, 4)), "slots 40-43 differ from buffer 1's pages 2-5");
        swap.Read(20, read.AsSpan(0, Page.Size));
        Assert.True(read.AsSpan(0, Page.Size).SequenceEqual(Buffer(1, 10, 1)), "slot 20 differs from buffer 1's page 10");

        // The ring is reused: a second submission overwrites in place.
        Random.Shared.NextBytes(Buffer(0, 0, 1));
        swap.PrepareWriteRun(ring, 0, 0, 1, Buffer(0, 0, 1));
        ring.SubmitAndWait();
        swap.Read(0, read.AsSpan(0, Page.Size));
        Assert.True(read.AsSpan(0, Page.Size).SequenceEqual(Buffer(0, 0, 1)), "slot 0 was not overwritten");
    }

    [Fact]
    public void A_failed_write_names_its_errno_offset_and_length_after_the_others_complete()
    {
        if (!RingsAvailable(out var why))
        {
            Console.WriteLine($"SKIPPED: {why}.");
            return;
        }
        var good = Path.Combine(_dir, "good");
        var readOnly = Path.Combine(_dir, "read-only");
        File.WriteAllBytes(readOnly, new byte[Page.Size]);
        Random.Shared.NextBytes(Buffer(0, 0, 1));
        using var goodFile = File.OpenHandle(good, FileMode.CreateNew, FileAccess.ReadWrite);
        using var badFile = File.OpenHandle(readOnly, FileMode.Open, FileAccess.Read);
        using var ring = CreateRing();

        ring.PrepareWrite((int)badFile.DangerousGetHandle(), 0, Buffer(0, 0, 1), 3 * Page.Size);
        ring.PrepareWrite((int)goodFile.DangerousGetHandle(), 0, Buffer(0, 0, 1), Page.Size);
        var e = Assert.Throws<IOException>(ring.SubmitAndWait);

        Assert.Contains("errno 9", e.Message); // EBADF: the descriptor is not open for writing.
        Assert.Contains($"{Page.Size} bytes at offset {3 * Page.Size}", e.Message);
        // The other write was reaped before the throw, not left reading the buffer.
        var written = File.ReadAllBytes(good);
        Assert.True(written.AsSpan(Page.Size).SequenceEqual(Buffer(0, 0, 1)), "the good write did not complete before the error was thrown");
    }

    [Fact]
    public unsafe void Bytes_outside_the_registered_buffer_and_too_many_writes_are_refused_before_submission()
    {
        if (!RingsAvailable(out var why))
        {
            Console.WriteLine($"SKIPPED: {why}.");
            return;
        }
        using var ring = CreateRing(entries: 2);
        var outside = new byte[Page.Size];
        Assert.Contains("not within registered buffer 0", Assert.Throws<ArgumentException>(() => ring.PrepareWrite(0, 0, outside, 0)).Message);
        // Buffer 0's last page and one byte beyond it.
        Assert.Throws<ArgumentException>(() => ring.PrepareWrite(0, 0, new ReadOnlySpan<byte>((byte*)_buffers[0] + (BufferPages - 1) * Page.Size, Page.Size + 1), 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => ring.PrepareWrite(0, 2, Buffer(0, 0, 1), 0));

        ring.PrepareWrite(0, 0, Buffer(0, 0, 1), 0);
        ring.PrepareWrite(0, 1, Buffer(1, 0, 1), 0);
        Assert.Contains("capacity", Assert.Throws<InvalidOperationException>(() => ring.PrepareWrite(0, 0, Buffer(0, 1, 1), 0)).Message);
    }

    [Fact]
    public void Bad_ring_arguments_are_refused_by_name_and_a_kernel_refusal_is_returned_with_its_errno()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => IoUring.TryCreate(3, _buffers, Page.Size, out _));
        Assert.Throws<ArgumentOutOfRangeException>(() => IoUring.TryCreate(8, [], Page.Size, out _));
        Assert.Contains("buffer 1", Assert.Throws<ArgumentException>(() => IoUring.TryCreate(8, [_buffers[0], 0], Page.Size, out _)).Message);
        if (!RingsAvailable(out var why))
        {
            Console.WriteLine($"SKIPPED the kernel part: {why}.");
            return;
        }
        // The kernel registers no buffer over 1 GiB.
        Assert.Null(IoUring.TryCreate(8, _buffers, int.MaxValue, out var refusal));
        Assert.Contains("io_uring_register of 2 buffers", refusal);
        Assert.Contains("errno", refusal);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task The_pagers_writers_write_staged_chunks_through_their_rings_unless_told_not_to(bool rings)
    {
        const int chunk = 64;
        using var memory = new GuestMemory(8L << 20);
        await using var pvm = new PrivateVirtualMemory(memory, new PrivateVirtualMemoryOptions
        {
            Mode = PagingMode.AsyncMethod1, SharePages = 2 * chunk, ChunkPages = chunk, PlacementStagingChunks = 4, DirectIo = true,
            PlacementWritesOnIoUring = rings, SwapFilePath = Path.Combine(_dir, "vm.swap"), ScanAccessBitsPeriodically = false,
        });
        var page = new byte[Page.Size];
        // The share (less its one-chunk reserve) takes chunk 0; chunks 3-6 go to swap, each written when its last page is placed.
        for (long p = 0; p < chunk; p++) Assert.Equal(PlacementTarget.Memory, pvm.PlacePage(p, Fill(page, p)));
        for (long p = 3 * chunk; p < 7 * chunk; p++) Assert.Equal(PlacementTarget.Swap, pvm.PlacePage(p, Fill(page, p)));
        await pvm.SettleAsync().WaitAsync(TimeSpan.FromSeconds(60));

        var s = pvm.Statistics.Snapshot();
        Assert.Equal(4 * chunk, s.PlacementWrites);
        if (!rings || !RingsAvailable(out _))
        {
            Assert.Equal(0, s.PlacementRingWrites);
            if (rings) Assert.Contains("io_uring_setup", pvm.PlacementRingRefusal);
            else Assert.Null(pvm.PlacementRingRefusal);
        }
        else
        {
            Assert.Null(pvm.PlacementRingRefusal);
            Assert.Equal(4 * chunk, s.PlacementRingWrites);
        }
        Assert.Equal(0, pvm.StagedChunks);
        var read = new byte[Page.Size];
        for (long p = 3 * chunk; p < 7 * chunk; p++)
        {
            Assert.Equal(PageResidency.Swapped, pvm.ReadPage(p, read));
            Assert.True(read.AsSpan().SequenceEqual(Fill(page, p)), $"page {p} read back differs");
        }
    }

    private static byte[] Fill(byte[] page, long p)
    {
        new Random((int)p).NextBytes(page);
        BitConverter.TryWriteBytes(page, p);
        return page;
    }
}
