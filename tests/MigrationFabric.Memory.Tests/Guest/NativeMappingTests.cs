using MigrationFabric.Memory.Guest;
using Xunit;

namespace MigrationFabric.Memory.Tests.Guest;

public class NativeMappingTests
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
}
