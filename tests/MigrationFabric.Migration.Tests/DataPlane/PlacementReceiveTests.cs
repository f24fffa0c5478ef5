using Google.Protobuf;
using MigrationFabric.Memory.Integrity;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Migration.Codec;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.Tests.Support;

namespace MigrationFabric.Migration.Tests.DataPlane;

/// <summary>Pages received for a placement: raw pages handed over as received (one copy), every page checked first, a bad one never placed.</summary>
public class PlacementReceiveTests
{
    [Fact]
    public void Raw_compressed_and_zero_pages_reach_the_placement_checked_and_a_changed_page_is_refused_by_name_and_never_placed()
    {
        using var target = new TestVm(1 << 20);
        var placed = new RecordingPlacement();
        var incoming = new IncomingMigration("pr-1", "vm", target.Memory, target.Mmu, new IncomingMigrationOptions { Placement = placed });
        incoming.UseChecksum(PageDigestKind.Xxh3, "test");
        var random = new byte[Page.Size];
        new Random(5).NextBytes(random);
        var compressible = new byte[Page.Size];
        compressible.AsSpan(100, 50).Fill(9);
        var builder = new PageBatchBuilder(8, PageCompression.Deflate, checksum: PageDigestKind.Xxh3);
        builder.AddPage(3, random);
        builder.AddPage(4, compressible);
        builder.AddZeroPage(5);
        using (var batch = builder.Build(1)) Assert.Equal(3, incoming.Apply(batch.Batch));

        // The zero page was never written here: no memory, no swap slot, nothing placed.
        Assert.Equal(new long[] { 3, 4 }, placed.Pages);
        Assert.Equal(random, placed.Contents[0]);
        Assert.Equal(compressible, placed.Contents[1]);

        var next = new PageBatchBuilder(8, PageCompression.None, checksum: PageDigestKind.Xxh3);
        next.AddPage(6, random);
        next.AddPage(7, random);
        using var encoded = next.Build(1);
        var bytes = encoded.Batch.Payload.ToByteArray();
        bytes[Page.Size + 7] ^= 0x40;
        var corrupt = encoded.Batch.Clone();
        corrupt.Payload = ByteString.CopyFrom(bytes);
        var e = Assert.Throws<PageChecksumException>(() => incoming.Apply(corrupt));
        Assert.Equal(7, e.Page);
        Assert.Equal(new long[] { 3, 4, 6 }, placed.Pages);
        incoming.Abort("test over");
    }

    private sealed class RecordingPlacement : IPagePlacement
    {
        public List<long> Pages { get; } = [];
        public List<byte[]> Contents { get; } = [];

        public void Place(long page, ReadOnlySpan<byte> contents)
        {
            Pages.Add(page);
            Contents.Add(contents.ToArray());
        }
    }
}
