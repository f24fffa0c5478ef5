using System.Text;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Integrity;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using Xunit;

namespace MigrationFabric.Memory.Tests.Integrity;

public class DigestTests
{
    // Reference values from the C library (libxxhash 0.8.1, XXH64(data, len, seed)).
    [Theory]
    [InlineData("", 0UL, 0xef46db3751d8e999UL)]
    [InlineData("a", 0UL, 0xd24ec4f1a98c6e5bUL)]
    [InlineData("abc", 0UL, 0x44bc2cf5ad770999UL)]
    [InlineData("Nobody inspects the spammish repetition", 0UL, 0xfbcea83c8a378bf1UL)]
    [InlineData("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 7UL, 0x9fbdbd0345dc39c0UL)]
    public void Xxh64_matches_the_reference_library(string text, ulong seed, ulong expected)
    {
        var data = Encoding.ASCII.GetBytes(text);
        Assert.Equal(expected, Xxh64.Hash(data, seed));
        var s = new Xxh64(seed);
        foreach (var b in data) s.Append([b]);
        Assert.Equal(expected, s.Digest());
    }

    [Fact]
    public void Xxh64_matches_the_reference_on_long_inputs_one_shot_and_streamed()
    {
        var kb = new byte[1024];
        for (int i = 0; i < kb.Length; i++) kb[i] = (byte)i;
        Assert.Equal(0x6f3914f18fe4df57UL, Xxh64.Hash(kb));
        var hundred = kb.AsSpan(0, 100).ToArray();
        Assert.Equal(0x28ba1ae2de4de27UL, Xxh64.Hash(hundred, 12345));
        var s = new Xxh64(0);
        s.Append(kb.AsSpan(0, 31));
        s.Append(kb.AsSpan(31, 33));
        s.Append(kb.AsSpan(64));
        Assert.Equal(0x6f3914f18fe4df57UL, s.Digest());
    }

    [Fact]
    public void Zero_page_digest_is_the_digest_of_4_KiB_of_zeroes()
    {
        Assert.Equal(0xac869b6f32d8bbdbUL, PageDigest.ZeroPage);
        using var m = new GuestMemory(16L << 20);
        Assert.Equal(PageDigest.ZeroPage, PageDigest.Of(m, 5));
        m.TryTransition(6, PageResidency.Zero, PageResidency.Ballooned);
        Assert.Equal(PageDigest.ZeroPage, PageDigest.Of(m, 6));
        // a resident page of zeroes digests the same as a never-touched one
        m.TryInstall(7, PageResidency.Zero, new byte[Page.Size]);
        Assert.Equal(PageDigest.ZeroPage, PageDigest.Of(m, 7));
    }

    [Fact]
    public void Vm_digest_agrees_wherever_pages_live_and_changes_with_one_byte()
    {
        using var a = new GuestMemory(16L << 20);
        using var b = new GuestMemory(16L << 20);
        using var mmuA = new SoftwareMmu(a);
        using var cpuA = mmuA.CreateVcpu();
        for (long p = 0; p < 64; p++) cpuA.WriteUInt64(p * Page.Size + 8, (ulong)p * 31 + 1);
        for (long p = 0; p < 64; p++) b.TryInstall(p, PageResidency.Zero, a.GetPageBytes(p));
        // on b, half the pages now live "elsewhere" (swap), read back through a reader
        var saved = new Dictionary<long, byte[]>();
        for (long p = 0; p < 64; p += 2)
        {
            saved[p] = b.GetPageBytes(p).ToArray();
            b.TryDiscard(p, PageResidency.Swapped);
        }
        var reader = new DictReader(saved);
        var perPage = new ulong[a.PageCount];
        ulong da = PageDigest.OfMemory(a, perPage: perPage);
        Assert.Equal(da, PageDigest.OfMemory(b, reader));
        Assert.Equal(PageDigest.Of(a.GetPageBytes(3)), perPage[3]);

        cpuA.Write(40 * Page.Size + 4000, [1]);
        Assert.NotEqual(da, PageDigest.OfMemory(a));
    }

    [Fact]
    public void Digest_of_a_swapped_page_without_a_reader_is_a_clear_error()
    {
        using var m = new GuestMemory(16L << 20);
        m.TryTransition(2, PageResidency.Zero, PageResidency.Remote);
        var e = Assert.Throws<InvalidOperationException>(() => PageDigest.Of(m, 2));
        Assert.Contains("Remote", e.Message);
        Assert.Throws<ArgumentException>(() => PageDigest.Of(new byte[100]));
        Assert.Throws<ArgumentException>(() => PageDigest.OfMemory(m, null, new ulong[3]));
    }

    private sealed class DictReader(Dictionary<long, byte[]> pages) : IPageContentReader
    {
        public void ReadPage(PageNumber page, PageResidency residency, Span<byte> destination) => pages[page].CopyTo(destination);
    }
}
