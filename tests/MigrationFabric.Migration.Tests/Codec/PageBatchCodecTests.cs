using FsCheck;
using FsCheck.Fluent;
using Google.Protobuf;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Memory.Integrity;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Migration.Codec;

namespace MigrationFabric.Migration.Tests.Codec;

public class PageBatchCodecTests
{
    /// <summary>A page to encode: its number, what it holds, and the extra flags it travels with.</summary>
    public sealed record PageSpec(long Number, byte Kind, int Seed, byte ExtraFlags)
    {
        // Kind: 0 zero page, 1 random bytes (incompressible), 2 repetitive bytes (compressible), 3 one non-zero byte at the end.
        public byte[] Contents()
        {
            var page = new byte[Page.Size];
            var rng = new Random(Seed);
            switch (Kind)
            {
                case 1: rng.NextBytes(page); break;
                case 2: for (int i = 0; i < page.Length; i++) page[i] = (byte)(i % 7 + Seed % 3); break;
                case 3: page[^1] = (byte)(Seed | 1); break;
            }
            return page;
        }
    }

    private const long TotalPages = 1 << 20;

    private static Gen<PageSpec> PageGen =>
        from number in Gen.Choose(0, (int)TotalPages - 1)
        from kind in Gen.Choose(0, 3)
        from seed in Gen.Choose(0, 1000)
        from extra in Gen.Elements((byte)0, PageFlags.Retransfer, PageFlags.Urgent, (byte)(PageFlags.Retransfer | PageFlags.Urgent))
        select new PageSpec(number, (byte)kind, seed, extra);

    private static Gen<(PageSpec[] Pages, bool Deflate)> BatchGen =>
        from count in Gen.Choose(1, 24)
        from pages in Gen.ArrayOf(PageGen, count)
        from deflate in Gen.Elements(false, true)
        select (pages, deflate);

    private static bool RoundTrips((PageSpec[] Pages, bool Deflate) input)
    {
        var builder = new PageBatchBuilder(32, input.Deflate ? PageCompression.Deflate : PageCompression.None);
        foreach (var p in input.Pages) builder.AddPage(p.Number, p.Contents(), p.ExtraFlags);
        using var encoded = builder.Build(3);
        encoded.Batch.Sequence = 9;
        // Through the wire format, as a receiver sees it.
        var received = PageBatch.Parser.ParseFrom(encoded.Batch.ToByteArray());
        var reader = new PageBatchReader(received, TotalPages);
        var landed = new byte[Page.Size];
        int i = 0;
        while (reader.TryRead(out var entry))
        {
            var spec = input.Pages[i++];
            var expected = spec.Contents();
            if (entry.Page != spec.Number) return false;
            if ((entry.Flags & (PageFlags.Retransfer | PageFlags.Urgent)) != spec.ExtraFlags) return false;
            if (entry.IsZero != (spec.Kind == 0)) return false;
            if (!input.Deflate && (entry.Flags & PageFlags.Compressed) != 0) return false;
            landed.AsSpan().Fill(0xEE);
            ulong digest = entry.DecodeInto(landed);
            if (!landed.AsSpan().SequenceEqual(expected) || digest != PageDigest.Of(expected)) return false;
        }
        return i == input.Pages.Length && received.Round == 3 && received.Sequence == 9;
    }

    [Fact]
    public void Decode_of_encode_gives_back_every_page_and_flag()
    {
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(300), Prop.ForAll(Arb.From(BatchGen), RoundTrips));
    }

    [Fact]
    public void Zero_pages_take_no_payload_and_compressible_pages_shrink()
    {
        var builder = new PageBatchBuilder(8, PageCompression.Deflate);
        builder.AddPage(1, new byte[Page.Size]);
        builder.AddZeroPage(2);
        builder.AddPage(3, new PageSpec(3, 2, 5, 0).Contents());
        builder.AddPage(4, new PageSpec(4, 1, 5, 0).Contents());
        using var encoded = builder.Build(1);
        var flags = encoded.Batch.Flags.Span;
        Assert.Equal(PageFlags.Zero, flags[0]);
        Assert.Equal(PageFlags.Zero, flags[1]);
        Assert.Equal(PageFlags.Compressed, flags[2]);
        Assert.Equal(PageFlags.None, flags[3]); // random bytes do not shrink: sent raw
        Assert.True(encoded.Batch.Lengths[2] < 200);
        Assert.Equal((int)encoded.Batch.Lengths[2] + Page.Size, encoded.Batch.Payload.Length);
    }

    [Fact]
    public void A_page_whose_bytes_changed_on_the_way_fails_its_checksum_naming_the_page()
    {
        var builder = new PageBatchBuilder(4);
        builder.AddPage(17, new PageSpec(17, 1, 1, 0).Contents());
        builder.AddPage(42, new PageSpec(42, 1, 2, 0).Contents());
        using var encoded = builder.Build(1);
        var bytes = encoded.Batch.Payload.ToByteArray();
        bytes[Page.Size + 100] ^= 0x01;
        var corrupt = encoded.Batch.Clone();
        corrupt.Payload = ByteString.CopyFrom(bytes);
        var reader = new PageBatchReader(corrupt, 100);
        var dest = new byte[Page.Size];
        Assert.True(reader.TryRead(out var first));
        first.DecodeInto(dest);
        Assert.True(reader.TryRead(out var second));
        var e = Assert.Throws<PageChecksumException>(() => second.DecodeInto(dest));
        Assert.Equal(42, e.Page);
        Assert.Contains("page 42", e.Message);
    }

    [Fact]
    public void A_raw_page_is_verified_where_it_was_received_and_handed_out_in_place_and_a_changed_one_fails_naming_it()
    {
        var builder = new PageBatchBuilder(4, PageCompression.Deflate);
        var incompressible = new byte[Page.Size];
        new Random(17).NextBytes(incompressible);
        builder.AddPage(17, incompressible);
        builder.AddPage(42, new byte[Page.Size].AsSpan(0, Page.Size / 2).ToArray().Concat(Enumerable.Repeat((byte)7, Page.Size / 2)).ToArray());
        builder.AddZeroPage(44);
        using var encoded = builder.Build(1);
        var reader = new PageBatchReader(encoded.Batch, 100);
        Assert.True(reader.TryRead(out var raw));
        Assert.True(raw.TryVerifyRaw(out var contents));
        Assert.True(contents.SequenceEqual(incompressible));
        Assert.True(System.Runtime.InteropServices.MemoryMarshal.TryGetArray(raw.Encoded, out var received) && contents.Overlaps(received.AsSpan()), "handed out in place, not copied");
        // A compressed page and a zero page have no raw bytes to hand out: nothing is checked, DecodeInto does it.
        Assert.True(reader.TryRead(out var compressed));
        Assert.NotEqual(0, compressed.Flags & PageFlags.Compressed);
        Assert.False(compressed.TryVerifyRaw(out _));
        Assert.True(reader.TryRead(out var zero));
        Assert.True(zero.IsZero);
        Assert.False(zero.TryVerifyRaw(out _));

        var plain = new PageBatchBuilder(4);
        plain.AddPage(42, new PageSpec(42, 1, 2, 0).Contents());
        using var one = plain.Build(1);
        var bytes = one.Batch.Payload.ToByteArray();
        bytes[100] ^= 0x01;
        var corrupt = one.Batch.Clone();
        corrupt.Payload = ByteString.CopyFrom(bytes);
        var bad = new PageBatchReader(corrupt, 100);
        Assert.True(bad.TryRead(out var changed));
        var e = Assert.Throws<PageChecksumException>(() => changed.TryVerifyRaw(out _));
        Assert.Equal(42, e.Page);
    }

    [Fact]
    public void A_zero_page_with_a_wrong_checksum_is_rejected()
    {
        var builder = new PageBatchBuilder(4);
        builder.AddZeroPage(5);
        using var encoded = builder.Build(1);
        var bad = encoded.Batch.Clone();
        bad.Checksums[0] ^= 1;
        var reader = new PageBatchReader(bad, 100);
        Assert.True(reader.TryRead(out var entry));
        Assert.Contains("page 5", Assert.Throws<PageChecksumException>(() => entry.DecodeInto(new byte[Page.Size])).Message);
    }

    public static TheoryData<string, string> Malformed => new()
    {
        { "flags", "flags" },
        { "checksums", "checksums" },
        { "lengths", "lengths" },
        { "range", "outside the VM" },
        { "short", "payload" },
        { "long", "payload" },
        { "unknown-flag", "unknown flag" },
        { "zero-and-compressed", "both zero and compressed" },
        { "compressed-length", "compressed page" },
        { "raw-length", "uncompressed page" },
    };

    [Theory]
    [MemberData(nameof(Malformed))]
    public void A_malformed_batch_is_rejected_with_a_message_naming_what_is_wrong(string defect, string expected)
    {
        var builder = new PageBatchBuilder(4);
        builder.AddPage(1, new PageSpec(1, 1, 1, 0).Contents());
        builder.AddZeroPage(2);
        using var encoded = builder.Build(1);
        var b = encoded.Batch.Clone();
        switch (defect)
        {
            case "flags": b.Flags = ByteString.CopyFrom(0); break;
            case "checksums": b.Checksums.RemoveAt(1); break;
            case "lengths": b.Lengths.Add(5); break;
            case "range": b.PageNumbers[1] = 100; break;
            case "short": b.Payload = ByteString.CopyFrom(new byte[100]); break;
            case "long": b.Payload = ByteString.CopyFrom(new byte[Page.Size + 1]); break;
            case "unknown-flag": b.Flags = ByteString.CopyFrom(0x40, PageFlags.Zero); break;
            case "zero-and-compressed": b.Flags = ByteString.CopyFrom(0, PageFlags.Zero | PageFlags.Compressed); break;
            case "compressed-length": b.Flags = ByteString.CopyFrom(PageFlags.Compressed, PageFlags.Zero); b.Lengths.Add(0); b.Lengths.Add(0); break;
            case "raw-length": b.Lengths.Add(10); b.Lengths.Add(0); break;
        }
        var e = Assert.Throws<PageBatchFormatException>(() => new PageBatchReader(b, 100));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Compressed_bytes_that_are_not_deflate_are_rejected()
    {
        var b = new PageBatch { Sequence = 1, Flags = ByteString.CopyFrom(PageFlags.Compressed), Payload = ByteString.CopyFrom(1, 2, 3, 4, 5, 6, 7, 8) };
        b.PageNumbers.Add(0);
        b.Checksums.Add(0);
        b.Lengths.Add(8);
        var reader = new PageBatchReader(b, 10);
        Assert.True(reader.TryRead(out var entry));
        Assert.Throws<PageBatchFormatException>(() => entry.DecodeInto(new byte[Page.Size]));
    }

    [Fact]
    public void A_full_builder_refuses_more_pages()
    {
        var builder = new PageBatchBuilder(1);
        builder.AddZeroPage(0);
        Assert.True(builder.IsFull);
        Assert.Throws<InvalidOperationException>(() => builder.AddZeroPage(1));
    }
}
