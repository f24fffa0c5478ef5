using System.Buffers.Binary;
using System.Runtime.Intrinsics.X86;
using FsCheck;
using FsCheck.Fluent;
using MigrationFabric.Memory.Integrity;
using Xunit;

namespace MigrationFabric.Memory.Tests.Integrity;

public class Xxh3Tests
{
    // Expected values from the real xxHash tool (Debian package xxhash 0.8.1): the input of length n, bytes
    // (i * 7 + 3) mod 256, written to a file and hashed with `xxhsum -H3 FILE`, which prints XXH3-64 as
    // big-endian hex (e.g. "XXH3 (abc.bin) = 78af5f94892f3950"), i.e. the value itself.
    [Theory]
    [InlineData(0, 0x2d06800538d394c2UL)]
    [InlineData(1, 0x13e608bc156defedUL)]
    [InlineData(2, 0x1c9074b93943b86cUL)]
    [InlineData(3, 0xa9088dda485b481cUL)]
    [InlineData(4, 0x6d9253b16c8b1ed3UL)]
    [InlineData(5, 0x998620e10e3a4b37UL)]
    [InlineData(7, 0x8e8291ad89127e2eUL)]
    [InlineData(8, 0x60539db630471163UL)]
    [InlineData(9, 0xfeff668361d723a8UL)]
    [InlineData(12, 0x6829454be0cc3199UL)]
    [InlineData(15, 0x9ec169f4a98231c1UL)]
    [InlineData(16, 0xb8c859b0f030b585UL)]
    [InlineData(17, 0x714a04408e79b80fUL)]
    [InlineData(31, 0xed41ac283d0674b3UL)]
    [InlineData(32, 0x19ff4ee1d6ba1a55UL)]
    [InlineData(33, 0x3e44983ad21679c8UL)]
    [InlineData(48, 0xacfddc85e0659691UL)]
    [InlineData(63, 0x1353bea3d0ebf7e1UL)]
    [InlineData(64, 0x287eb1fa9e4be2c1UL)]
    [InlineData(65, 0x829218de4d798646UL)]
    [InlineData(96, 0xf084e7cfbc624743UL)]
    [InlineData(97, 0x1daa83271a8e7b7cUL)]
    [InlineData(127, 0x998fa0631fd78d0bUL)]
    [InlineData(128, 0x67425a03650261bfUL)]
    [InlineData(129, 0xc664bf3311c6abc4UL)]
    [InlineData(143, 0x8b313780705af3a7UL)]
    [InlineData(144, 0x606a17fa700bb932UL)]
    [InlineData(160, 0xd70dea8de694b883UL)]
    [InlineData(239, 0x1d861931c1f3cafaUL)]
    [InlineData(240, 0x64556dc6b462a6cfUL)]
    [InlineData(241, 0x8beadd3a8874fe17UL)]
    [InlineData(255, 0xb67b6637a76e6c39UL)]
    [InlineData(256, 0x3c38817f6d79c0daUL)]
    [InlineData(511, 0xe3fca5c97aa72e1bUL)]
    [InlineData(512, 0xf58202b8d9019d1dUL)]
    [InlineData(1023, 0xd26986a0b85dcc44UL)]
    [InlineData(1024, 0x9b81661c641c72b1UL)]
    [InlineData(1025, 0x806c2072ed713576UL)]
    [InlineData(1087, 0x0d058f8dbd85227eUL)]
    [InlineData(1088, 0x2f8781e01841f0daUL)]
    [InlineData(2047, 0xe36fcecaa2c0ecbaUL)]
    [InlineData(2048, 0xabe604813ba62ed1UL)]
    [InlineData(3000, 0xc89178bb873c6b3dUL)]
    [InlineData(4095, 0x5445a6b7cb9d1cd7UL)]
    [InlineData(4096, 0xd7428746842be37eUL)]
    [InlineData(4097, 0xa51ead018cadb378UL)]
    [InlineData(8192, 0x4bdd498cfc5719baUL)]
    [InlineData(10000, 0xfcd0ecba1a48462dUL)]
    public void Matches_xxhsum_for_every_length_class(int length, ulong expected)
    {
        var data = Pattern(length);
        Assert.Equal(expected, Xxh3.Hash(data));
        if (length > 240)
        {
            Assert.Equal(expected, Xxh3.HashLongScalar(data));
            if (Sse2.IsSupported) Assert.Equal(expected, Xxh3.HashLongSse2(data));
            if (Avx2.IsSupported) Assert.Equal(expected, Xxh3.HashLongAvx2(data));
        }
    }

    // Pages of SplitMix64 output (SeededPage below: 512 little-endian words from the seed), written to files by a
    // Python script doing the same SplitMix64 and hashed with `xxhsum -H3 FILE` (xxhash 0.8.1).
    [Theory]
    [InlineData(1UL, 0x92e56a43d1cb2adbUL)]
    [InlineData(2UL, 0xe53fe5f2a215cf42UL)]
    [InlineData(3UL, 0x892ccbfaa556cd80UL)]
    [InlineData(42UL, 0x61199dcc5512d970UL)]
    [InlineData(0xDEADBEEFUL, 0xa3a65539c6d6390aUL)]
    public void Matches_xxhsum_on_seeded_random_pages(ulong seed, ulong expected)
    {
        var page = SeededPage(seed);
        Assert.Equal(expected, Xxh3.Hash(page));
        Assert.Equal(expected, Xxh3.HashLongScalar(page));
        if (Sse2.IsSupported) Assert.Equal(expected, Xxh3.HashLongSse2(page));
        if (Avx2.IsSupported) Assert.Equal(expected, Xxh3.HashLongAvx2(page));
    }

    [Fact]
    public void Matches_xxhsum_on_4096_seeded_random_pages()
    {
        // The wrapping sum and the xor of `xxhsum -H3` over the 4096 pages of seeds 1000..5095 (xxhash 0.8.1).
        const ulong expectedSum = 0x7731b6945962f09aUL, expectedXor = 0xae1139605a788998UL;
        ulong sum = 0, xor = 0;
        for (ulong seed = 1000; seed < 5096; seed++)
        {
            ulong h = Xxh3.Hash(SeededPage(seed));
            sum += h;
            xor ^= h;
        }
        Assert.Equal(expectedSum, sum);
        Assert.Equal(expectedXor, xor);
    }

    [Fact]
    public void Zero_page_matches_xxhsum()
    {
        // `head -c 4096 /dev/zero > z && xxhsum -H3 z` (xxhash 0.8.1).
        Assert.Equal(0x93d76fe148c689baUL, Xxh3.Hash(new byte[4096]));
    }

    [Fact]
    public void Page_digests_of_kind_xxh3_agree_wherever_the_page_lives_and_differ_from_xxh64()
    {
        Assert.Equal(0x93d76fe148c689baUL, PageDigest.ZeroPageXxh3);
        Assert.Equal(PageDigest.ZeroPageXxh3, PageDigest.ZeroPageOf(PageDigestKind.Xxh3));
        Assert.Equal(PageDigest.ZeroPage, PageDigest.ZeroPageOf(PageDigestKind.Xxh64));
        using var memory = new MigrationFabric.Memory.Guest.GuestMemory(1 << 20);
        var page = SeededPage(42);
        memory.TryInstall(3, MigrationFabric.Memory.Pages.PageResidency.Zero, page);
        Assert.Equal(0x61199dcc5512d970UL, PageDigest.Of(memory, 3, kind: PageDigestKind.Xxh3));
        Assert.Equal(0x61199dcc5512d970UL, PageDigest.Of(page, PageDigestKind.Xxh3));
        Assert.Equal(Xxh64.Hash(page), PageDigest.Of(memory, 3));
        Assert.Equal(PageDigest.ZeroPageXxh3, PageDigest.Of(memory, 4, kind: PageDigestKind.Xxh3));
        Span<ulong> perPage = new ulong[memory.PageCount];
        ulong vm = PageDigest.OfMemory(memory, perPage: perPage, kind: PageDigestKind.Xxh3);
        Assert.Equal(0x61199dcc5512d970UL, perPage[3]);
        Assert.NotEqual(PageDigest.OfMemory(memory), vm);
        Assert.Throws<ArgumentException>(() => PageDigest.Of(new byte[100], PageDigestKind.Xxh3));
        Assert.Throws<ArgumentOutOfRangeException>(() => PageDigest.Hash((PageDigestKind)9, page));
    }

    [Fact]
    public void Long_paths_refuse_short_input()
    {
        var e = Assert.Throws<ArgumentException>(() => Xxh3.HashLongScalar(new byte[240]));
        Assert.Contains("240", e.Message);
    }

    [Fact]
    public void Vector_paths_equal_the_scalar_path_on_random_pages()
    {
        var bytes = ArbMap.Default.GeneratorFor<byte>();
        var pages = Gen.OneOf(
            Gen.ArrayOf(bytes, 4096),
            // mostly-zero pages with a few set bytes, like a guest's sparse memory
            from at in Gen.ArrayOf(Gen.Choose(0, 4095), 8)
            from b in Gen.ArrayOf(bytes, 8)
            select Sparse(at, b));
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(200),
            Prop.ForAll(Arb.From(pages), page =>
            {
                ulong scalar = Xxh3.HashLongScalar(page);
                if (Xxh3.Hash(page) != scalar) return false;
                if (Sse2.IsSupported && Xxh3.HashLongSse2(page) != scalar) return false;
                return !Avx2.IsSupported || Xxh3.HashLongAvx2(page) == scalar;
            }));
    }

    [Fact]
    public void Vector_paths_equal_the_scalar_path_on_random_lengths()
    {
        var inputs = from length in Gen.Choose(241, 9000)
                     from seed in ArbMap.Default.GeneratorFor<ulong>()
                     select Random(length, seed);
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(100),
            Prop.ForAll(Arb.From(inputs), data =>
            {
                ulong scalar = Xxh3.HashLongScalar(data);
                if (Xxh3.Hash(data) != scalar) return false;
                if (Sse2.IsSupported && Xxh3.HashLongSse2(data) != scalar) return false;
                return !Avx2.IsSupported || Xxh3.HashLongAvx2(data) == scalar;
            }));
    }

    private static byte[] Sparse(int[] at, byte[] values)
    {
        var page = new byte[4096];
        for (int i = 0; i < at.Length; i++) page[at[i]] = values[i];
        return page;
    }

    private static byte[] Random(int length, ulong seed)
    {
        var data = new byte[length];
        new Random((int)seed ^ (int)(seed >> 32)).NextBytes(data);
        return data;
    }

    private static byte[] Pattern(int length)
    {
        var data = new byte[length];
        for (int i = 0; i < length; i++) data[i] = (byte)((i * 7 + 3) % 256);
        return data;
    }

    /// <summary>512 SplitMix64 outputs from <paramref name="seed"/>, little-endian: what the reference script hashed.</summary>
    internal static byte[] SeededPage(ulong seed)
    {
        var page = new byte[4096];
        ulong state = seed;
        for (int i = 0; i < 512; i++)
        {
            state += 0x9E3779B97F4A7C15UL;
            ulong z = state;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            BinaryPrimitives.WriteUInt64LittleEndian(page.AsSpan(i * 8), z ^ (z >> 31));
        }
        return page;
    }
}
