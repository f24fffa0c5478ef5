using MigrationFabric.Contracts.V1;
using MigrationFabric.Memory.Integrity;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Migration.Codec;

namespace MigrationFabric.Migration.Tests.Codec;

public class ChecksumKindCodecTests
{
    private static byte[] RandomPage(int seed)
    {
        var bytes = new byte[Page.Size];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    [Theory]
    [InlineData(PageCompression.None)]
    [InlineData(PageCompression.Deflate)]
    public void Xxh3_batches_carry_xxh3_checksums_and_decode_with_them(PageCompression compression)
    {
        var page = RandomPage(1);
        // Half a page of zeroes deflates, so the deflate case carries a compressed page too.
        var compressible = new byte[Page.Size];
        page.AsSpan(0, 100).CopyTo(compressible);
        var builder = new PageBatchBuilder(4, compression, checksum: PageDigestKind.Xxh3);
        builder.AddPage(5, page);
        builder.AddPage(6, new byte[Page.Size]);
        builder.AddZeroPage(7);
        builder.AddPage(8, compressible);
        var batch = builder.Build(1).Batch;

        Assert.Equal(new ulong[] { Xxh3.Hash(page), PageDigest.ZeroPageXxh3, PageDigest.ZeroPageXxh3, Xxh3.Hash(compressible) }, batch.Checksums);
        Assert.NotEqual(PageDigest.ZeroPage, PageDigest.ZeroPageXxh3);
        var reader = new PageBatchReader(batch, 16, PageDigestKind.Xxh3);
        var into = new byte[Page.Size];
        var decoded = new List<ulong>();
        while (reader.TryRead(out var entry))
        {
            Assert.Equal(PageDigestKind.Xxh3, entry.ChecksumKind);
            if (entry.IsZero) { entry.VerifyZero(); decoded.Add(PageDigest.ZeroPageXxh3); }
            else decoded.Add(entry.DecodeInto(into));
        }
        Assert.Equal(batch.Checksums, decoded);
    }

    [Fact]
    public void A_batch_read_with_another_kind_than_it_was_built_with_fails_naming_the_page_and_kind()
    {
        var builder = new PageBatchBuilder(2, checksum: PageDigestKind.Xxh3);
        builder.AddPage(3, RandomPage(2));
        builder.AddZeroPage(4);
        var batch = builder.Build(1).Batch;

        var reader = new PageBatchReader(batch, 16, PageDigestKind.Xxh64);
        Assert.True(reader.TryRead(out var data));
        var e = Assert.Throws<PageChecksumException>(() => data.DecodeInto(new byte[Page.Size]));
        Assert.Contains("page 3", e.Message);
        Assert.Contains("xxh64", e.Message);
        Assert.True(reader.TryRead(out var zero));
        var z = Assert.Throws<PageChecksumException>(() => zero.VerifyZero());
        Assert.Contains("page 4", z.Message);
    }

    [Fact]
    public void Wire_kinds_map_both_ways_and_an_unknown_kind_is_refused_by_name()
    {
        Assert.Equal(PageDigestKind.Xxh64, PageChecksums.FromWire(ChecksumKind.Unspecified));
        Assert.Equal(PageDigestKind.Xxh64, PageChecksums.FromWire(ChecksumKind.Xxh64));
        Assert.Equal(PageDigestKind.Xxh3, PageChecksums.FromWire(ChecksumKind.Xxh3));
        Assert.Equal(ChecksumKind.Xxh3, PageChecksums.ToWire(PageDigestKind.Xxh3));
        Assert.Equal(ChecksumKind.Xxh64, PageChecksums.ToWire(PageDigestKind.Xxh64));
        var e = Assert.Throws<UnsupportedChecksumException>(() => PageChecksums.FromWire((ChecksumKind)9));
        Assert.Contains("checksum kind 9", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new PageBatchBuilder(1, checksum: (PageDigestKind)9));
        Assert.Throws<ArgumentOutOfRangeException>(() => new PageBatchReader(new PageBatch(), 1, (PageDigestKind)0));
    }
}
