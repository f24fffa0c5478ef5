using System.Runtime.InteropServices;
using MigrationFabric.Memory.Guest;
using Xunit;

namespace MigrationFabric.Memory.Tests.Guest;

public partial class NativeMappingTests
{
    [Fact]
    public void Mmap_failure_is_reported_with_its_errno()
    {
        if (!OperatingSystem.IsLinux()) return;
        // 1 PiB is beyond the 128 TiB user address space of x86-64 and arm64: the kernel must refuse it.
        var e = Assert.Throws<OutOfMemoryException>(() => new NativeMapping(1L << 50, hugePages: false));
        Assert.Contains("mmap", e.Message);
        Assert.Contains("errno 12", e.Message);
    }

    [Fact]
    public void Discarded_range_reads_back_as_zeroes_and_disposed_mapping_refuses_use()
    {
        var m = new NativeMapping(1 << 20, hugePages: false);
        unsafe
        {
            new Span<byte>(m.Base, 1 << 20).Fill(7);
            m.Discard(4096, 8192);
            Assert.Equal(7, m.Base[4095]);
            Assert.Equal(0, m.Base[4096]);
            Assert.Equal(0, m.Base[12287]);
            Assert.Equal(7, m.Base[12288]);
        }
        m.Dispose();
        Assert.Throws<ObjectDisposedException>(() => m.Discard(0, 4096));
        m.Dispose();
    }

    [Fact]
    public void Populate_puts_RAM_behind_the_range_and_leaves_its_bytes()
    {
        if (!OperatingSystem.IsLinux()) return;
        using var m = new NativeMapping(1 << 20, hugePages: false);
        unsafe
        {
            m.Base[8192] = 9;
            Assert.Equal(0, ResidentPagesOf((nint)m.Base + 65536, 16));
            if (!m.Populate(65536, 65536)) { Console.Error.WriteLine("SKIPPED: this kernel has no MADV_POPULATE_WRITE (Linux < 5.14)"); return; }
            Assert.Equal(16, ResidentPagesOf((nint)m.Base + 65536, 16));
            Assert.Equal(0, ResidentPagesOf((nint)m.Base + 131072, 16));
            Assert.True(m.Populate(0, 16384));
            Assert.Equal(9, m.Base[8192]);
            Assert.True(new Span<byte>(m.Base + 65536, 65536).IndexOfAnyExcept((byte)0) < 0);
        }
    }

    [Fact]
    public void A_range_the_kernel_cannot_populate_is_left_to_fault_on_first_write()
    {
        if (!OperatingSystem.IsLinux()) return;
        using var m = new NativeMapping(1 << 20, hugePages: false);
        unsafe
        {
            // Linux answers EINVAL for a range it cannot populate for writing, as for the unknown advice before 5.14.
            Assert.Equal(0, Mprotect((nint)m.Base + 4096, 4096, 1));
            Assert.False(m.Populate(0, 16384));
            Assert.Equal(0, Mprotect((nint)m.Base + 4096, 4096, 3));
            m.Base[4096] = 1;
            Assert.Equal(1, m.Base[4096]);
        }
    }

    [Theory]
    [InlineData(12, typeof(InsufficientMemoryException))]
    [InlineData(14, typeof(InvalidOperationException))]
    [InlineData(4, typeof(InvalidOperationException))]
    public void A_populate_the_kernel_refuses_is_an_error_naming_the_range_and_errno(int errno, Type expected)
    {
        var e = NativeMapping.PopulateRefusal(errno, 65536, 8192);
        Assert.NotNull(e);
        Assert.IsType(expected, e);
        Assert.Contains("MADV_POPULATE_WRITE) of 8192 bytes at offset 65536 failed: errno " + errno, e.Message);
        Assert.Null(NativeMapping.PopulateRefusal(22, 0, 4096));
        Assert.Null(NativeMapping.PopulateRefusal(38, 0, 4096));
    }

    internal static unsafe int ResidentPagesOf(nint address, int pages)
    {
        var vec = stackalloc byte[pages];
        Assert.Equal(0, Mincore(address, (nuint)pages * 4096, vec));
        int n = 0;
        for (int i = 0; i < pages; i++) n += vec[i] & 1;
        return n;
    }

    [LibraryImport("libc", EntryPoint = "mincore", SetLastError = true)]
    private static unsafe partial int Mincore(nint addr, nuint length, byte* vec);

    [LibraryImport("libc", EntryPoint = "mprotect", SetLastError = true)]
    private static partial int Mprotect(nint addr, nuint length, int prot);
}
