using System.Runtime.InteropServices;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Swap;
using Xunit;

namespace MigrationFabric.Memory.Tests.Swap;

/// <summary>PrivateSwapFile.Prewrite: the file's blocks written ahead of the first page, as a swap device's are; refused once pages are in it.</summary>
public sealed partial class PrewriteSwapTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mf-prewrite-test-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Prewriting_leaves_no_unwritten_extent_and_every_slot_still_reads_zero(bool directIo)
    {
        // 3000 slots: more than one 8 MiB step and not a multiple of it.
        using var swap = PrivateSwapFile.Create(Path.Combine(_dir, "vm.swap"), slotCount: 3000, directIo: directIo);
        if (UnwrittenBytes(swap.Path) is not { } before) { Console.Error.WriteLine($"SKIPPED: FIEMAP is not supported on {_dir}'s file system"); return; }
        Assert.True(before > 0, "fallocate left unwritten extents to convert");

        swap.Prewrite(CancellationToken.None);

        Assert.Equal(0, UnwrittenBytes(swap.Path));
        Assert.Equal(3000L * Page.Size, new FileInfo(swap.Path).Length);
        var page = new byte[Page.Size];
        foreach (var slot in new[] { 0, 2047, 2048, 2999 })
        {
            page.AsSpan().Fill(0xEE);
            swap.Read(slot, page);
            Assert.True(page.AsSpan().IndexOfAnyExcept((byte)0) < 0, $"slot {slot} reads zero");
        }
        var data = new byte[Page.Size];
        Random.Shared.NextBytes(data);
        swap.Write(2999, data);
        swap.Read(2999, page);
        Assert.Equal(data, page);
    }

    [Fact]
    public void A_file_holding_a_page_is_not_prewritten_and_keeps_the_page()
    {
        using var swap = PrivateSwapFile.Create(Path.Combine(_dir, "vm.swap"), slotCount: 16);
        var data = new byte[Page.Size];
        Random.Shared.NextBytes(data);
        swap.Write(3, data);

        var e = Assert.Throws<InvalidOperationException>(() => swap.Prewrite(CancellationToken.None));
        Assert.Contains(swap.Path, e.Message);
        var page = new byte[Page.Size];
        swap.Read(3, page);
        Assert.Equal(data, page);
    }

    [Fact]
    public void Cancelled_or_disposed_prewrites_stop_by_name()
    {
        var swap = PrivateSwapFile.Create(Path.Combine(_dir, "vm.swap"), slotCount: 16);
        Assert.Throws<OperationCanceledException>(() => swap.Prewrite(new CancellationToken(canceled: true)));
        swap.Dispose();
        Assert.Throws<ObjectDisposedException>(() => swap.Prewrite(CancellationToken.None));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Private_memory_prewrites_its_swap_file_unless_told_not_to(bool prewrite)
    {
        using var memory = new GuestMemory(8L << 20);
        await using var pvm = new PrivateVirtualMemory(memory, new PrivateVirtualMemoryOptions
        {
            SharePages = 512, SwapFilePath = Path.Combine(_dir, $"pvm-{prewrite}.swap"), ScanAccessBitsPeriodically = false, PrewriteSwapFile = prewrite,
        });
        Assert.True(new PrivateVirtualMemoryOptions().PrewriteSwapFile, "on by default");
        if (UnwrittenBytes(pvm.SwapFile.Path) is not { } unwritten) { Console.Error.WriteLine($"SKIPPED: FIEMAP is not supported on {_dir}'s file system"); return; }
        Assert.Equal(prewrite, unwritten == 0);
    }

    // Bytes of the file in extents the file system marks unwritten (FS_IOC_FIEMAP); null where FIEMAP is not supported.
    private static long? UnwrittenBytes(string path)
    {
        if (!OperatingSystem.IsLinux()) return null;
        // libc's open: .NET's own would meet the swap file's exclusive advisory lock.
        var fd = Open(path, 0);
        if (fd < 0) throw new IOException($"open '{path}' failed: errno {Marshal.GetLastPInvokeError()}");
        try
        {
            return Unwritten(fd);
        }
        finally
        {
            _ = Close(fd);
        }
    }

    private static unsafe long? Unwritten(int fd)
    {
        const int Extents = 512, HeaderBytes = 32, ExtentBytes = 56;
        const uint FiemapFlagSync = 1, ExtentLast = 0x1, ExtentUnwritten = 0x800;
        const ulong FsIocFiemap = 0xC020660B;
        var buffer = new byte[HeaderBytes + Extents * ExtentBytes];
        long unwritten = 0;
        ulong start = 0;
        fixed (byte* b = buffer)
        {
            while (true)
            {
                Array.Clear(buffer);
                *(ulong*)b = start;
                *(ulong*)(b + 8) = ulong.MaxValue;
                *(uint*)(b + 16) = FiemapFlagSync;
                *(uint*)(b + 24) = Extents;
                if (Ioctl(fd, FsIocFiemap, b) != 0) return null;
                var mapped = *(uint*)(b + 20);
                if (mapped == 0) return unwritten;
                for (var i = 0; i < mapped; i++)
                {
                    var e = b + HeaderBytes + i * ExtentBytes;
                    var length = *(ulong*)(e + 16);
                    var flags = *(uint*)(e + 40);
                    if ((flags & ExtentUnwritten) != 0) unwritten += (long)length;
                    start = *(ulong*)e + length;
                    if ((flags & ExtentLast) != 0) return unwritten;
                }
            }
        }
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static unsafe partial int Ioctl(int fd, ulong request, byte* argument);
}
