using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace MigrationFabric.Memory.Integrity;

/// <summary>XXH3-64 (Yann Collet's xxHash, 64-bit XXH3) with seed 0 and the default secret, written from the published specification.</summary>
/// <remarks>
/// Inputs above 240 bytes (pages) take the stripe loop, vectorized with AVX2 or SSE2 when the CPU has them and
/// scalar otherwise; all three give the same value (a property test checks it).
/// </remarks>
public static class Xxh3
{
    private const ulong Prime32_1 = 0x9E3779B1UL;
    private const ulong Prime32_2 = 0x85EBCA77UL;
    private const ulong Prime32_3 = 0xC2B2AE3DUL;
    private const ulong Prime64_1 = 0x9E3779B185EBCA87UL;
    private const ulong Prime64_2 = 0xC2B2AE3D27D4EB4FUL;
    private const ulong Prime64_3 = 0x165667B19E3779F9UL;
    private const ulong Prime64_4 = 0x85EBCA77C2B2AE63UL;
    private const ulong Prime64_5 = 0x27D4EB2F165667C5UL;
    private const ulong PrimeMx1 = 0x165667919E3779F9UL;
    private const ulong PrimeMx2 = 0x9FB21C651E98DF25UL;

    private const int SecretSize = 192;
    private const int StripeSize = 64;
    private const int StripesPerBlock = (SecretSize - StripeSize) / 8;
    private const int BlockSize = StripeSize * StripesPerBlock;
    private const int ScrambleOffset = SecretSize - StripeSize;
    private const int LastStripeSecretOffset = SecretSize - StripeSize - 7;
    private const int MergeSecretOffset = 11;

    /// <summary>The default secret (kept in the assembly's data: reading it allocates nothing).</summary>
    private static ReadOnlySpan<byte> Secret =>
    [
        0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c,
        0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f,
        0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21,
        0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c,
        0x3c, 0x28, 0x52, 0xbb, 0x91, 0xc3, 0x00, 0xcb, 0x88, 0xd0, 0x65, 0x8b, 0x1b, 0x53, 0x2e, 0xa3,
        0x71, 0x64, 0x48, 0x97, 0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19, 0xef, 0x46, 0xa9, 0xde, 0xac, 0xd8,
        0xa8, 0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9, 0xdc, 0xbb, 0xc7, 0xc7, 0x0b, 0x4f, 0x1d,
        0x8a, 0x51, 0xe0, 0x4b, 0xcd, 0xb4, 0x59, 0x31, 0xc8, 0x9f, 0x7e, 0xc9, 0xd9, 0x78, 0x73, 0x64,
        0xea, 0xc5, 0xac, 0x83, 0x34, 0xd3, 0xeb, 0xc3, 0xc5, 0x81, 0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb,
        0x17, 0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda, 0x49, 0xd3, 0x16, 0x55, 0x26, 0x29, 0xd4, 0x68, 0x9e,
        0x2b, 0x16, 0xbe, 0x58, 0x7d, 0x47, 0xa1, 0xfc, 0x8f, 0xf8, 0xb8, 0xd1, 0x7a, 0xd0, 0x31, 0xce,
        0x45, 0xcb, 0x3a, 0x8f, 0x95, 0x16, 0x04, 0x28, 0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b, 0x40, 0x7e,
    ];

    /// <summary>XXH3-64 of <paramref name="data"/> (seed 0, default secret).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // Every page is hashed on both sides of a migration: run optimized from the first call instead of tier-0 for the first seconds.
    public static ulong Hash(ReadOnlySpan<byte> data)
    {
        int length = data.Length;
        if (length <= 16) return HashUpTo16(data);
        if (length <= 128) return Hash17To128(data);
        if (length <= 240) return Hash129To240(data);
        if (Avx2.IsSupported) return HashLongAvx2(data);
        if (Sse2.IsSupported) return HashLongSse2(data);
        return HashLongScalar(data);
    }

    private static ulong HashUpTo16(ReadOnlySpan<byte> data)
    {
        int length = data.Length;
        ref byte s = ref MemoryMarshal.GetReference(Secret);
        if (length > 8)
        {
            ulong low = (Read64(ref s, 24) ^ Read64(ref s, 32)) ^ BinaryPrimitives.ReadUInt64LittleEndian(data);
            ulong high = (Read64(ref s, 40) ^ Read64(ref s, 48)) ^ BinaryPrimitives.ReadUInt64LittleEndian(data[(length - 8)..]);
            ulong value = (ulong)length + BinaryPrimitives.ReverseEndianness(low) + high + Fold(low, high);
            return Avalanche(value);
        }
        if (length >= 4)
        {
            ulong first = BinaryPrimitives.ReadUInt32LittleEndian(data);
            ulong last = BinaryPrimitives.ReadUInt32LittleEndian(data[(length - 4)..]);
            ulong value = (Read64(ref s, 8) ^ Read64(ref s, 16)) ^ (last | (first << 32));
            value ^= BitOperations.RotateLeft(value, 49) ^ BitOperations.RotateLeft(value, 24);
            value *= PrimeMx2;
            value ^= (value >> 35) + (ulong)length;
            value *= PrimeMx2;
            return value ^ (value >> 28);
        }
        if (length > 0)
        {
            uint combined = data[length - 1] | ((uint)length << 8) | ((uint)data[0] << 16) | ((uint)data[length >> 1] << 24);
            ulong value = (ulong)(Read32(ref s, 0) ^ Read32(ref s, 4)) ^ combined;
            return AvalancheXxh64(value);
        }
        return AvalancheXxh64(Read64(ref s, 56) ^ Read64(ref s, 64));
    }

    private static ulong Hash17To128(ReadOnlySpan<byte> data)
    {
        int length = data.Length;
        ref byte d = ref MemoryMarshal.GetReference(data);
        ulong acc = (ulong)length * Prime64_1;
        int rounds = ((length - 1) >> 5) + 1;
        for (int i = rounds - 1; i >= 0; i--)
        {
            acc += Mix16(ref d, i * 16, i * 32);
            acc += Mix16(ref d, length - i * 16 - 16, i * 32 + 16);
        }
        return Avalanche(acc);
    }

    private static ulong Hash129To240(ReadOnlySpan<byte> data)
    {
        int length = data.Length;
        ref byte d = ref MemoryMarshal.GetReference(data);
        ulong acc = (ulong)length * Prime64_1;
        for (int i = 0; i < 8; i++) acc += Mix16(ref d, i * 16, i * 16);
        acc = Avalanche(acc);
        int chunks = length >> 4;
        for (int i = 8; i < chunks; i++) acc += Mix16(ref d, i * 16, (i - 8) * 16 + 3);
        acc += Mix16(ref d, length - 16, 119);
        return Avalanche(acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Mix16(ref byte data, int offset, int secretOffset)
    {
        ref byte s = ref MemoryMarshal.GetReference(Secret);
        ulong lo = Read64(ref data, offset) ^ Read64(ref s, secretOffset);
        ulong hi = Read64(ref data, offset + 8) ^ Read64(ref s, secretOffset + 8);
        return Fold(lo, hi);
    }

    /// <summary>The stripe loop for inputs above 240 bytes, one 64-bit lane at a time (the reference for the vector paths).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static ulong HashLongScalar(ReadOnlySpan<byte> data)
    {
        if (data.Length <= 240) throw new ArgumentException($"the long-input path takes more than 240 bytes, got {data.Length}.", nameof(data));
        int length = data.Length;
        ref byte d = ref MemoryMarshal.GetReference(data);
        ref byte s = ref MemoryMarshal.GetReference(Secret);
        Span<ulong> acc = [Prime32_3, Prime64_1, Prime64_2, Prime64_3, Prime64_4, Prime32_2, Prime64_5, Prime32_1];

        int blocks = (length - 1) / BlockSize;
        for (int b = 0; b < blocks; b++)
        {
            for (int n = 0; n < StripesPerBlock; n++) AccumulateScalar(acc, ref d, b * BlockSize + n * StripeSize, ref s, n * 8);
            for (int i = 0; i < 8; i++)
            {
                ulong a = acc[i];
                a ^= a >> 47;
                a ^= Read64(ref s, ScrambleOffset + i * 8);
                acc[i] = a * Prime32_1;
            }
        }
        int stripes = (length - 1 - blocks * BlockSize) / StripeSize;
        for (int n = 0; n < stripes; n++) AccumulateScalar(acc, ref d, blocks * BlockSize + n * StripeSize, ref s, n * 8);
        AccumulateScalar(acc, ref d, length - StripeSize, ref s, LastStripeSecretOffset);

        ulong result = (ulong)length * Prime64_1;
        for (int i = 0; i < 4; i++)
            result += Fold(acc[2 * i] ^ Read64(ref s, MergeSecretOffset + 16 * i), acc[2 * i + 1] ^ Read64(ref s, MergeSecretOffset + 16 * i + 8));
        return Avalanche(result);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AccumulateScalar(Span<ulong> acc, ref byte data, int offset, ref byte secret, int secretOffset)
    {
        for (int i = 0; i < 8; i++)
        {
            ulong value = Read64(ref data, offset + i * 8);
            ulong key = value ^ Read64(ref secret, secretOffset + i * 8);
            acc[i ^ 1] += value;
            acc[i] += (key & 0xFFFFFFFFUL) * (key >> 32);
        }
    }

    /// <summary>The stripe loop with two 256-bit accumulators (AVX2).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static ulong HashLongAvx2(ReadOnlySpan<byte> data)
    {
        if (!Avx2.IsSupported) throw new PlatformNotSupportedException("this CPU has no AVX2.");
        if (data.Length <= 240) throw new ArgumentException($"the long-input path takes more than 240 bytes, got {data.Length}.", nameof(data));
        int length = data.Length;
        ref byte d = ref MemoryMarshal.GetReference(data);
        ref byte s = ref MemoryMarshal.GetReference(Secret);
        var acc0 = Vector256.Create(Prime32_3, Prime64_1, Prime64_2, Prime64_3);
        var acc1 = Vector256.Create(Prime64_4, Prime32_2, Prime64_5, Prime32_1);
        var prime = Vector256.Create(Prime32_1).AsUInt32();
        var scramble0 = Vector256.LoadUnsafe(ref s, ScrambleOffset).AsUInt64();
        var scramble1 = Vector256.LoadUnsafe(ref s, ScrambleOffset + 32).AsUInt64();

        int blocks = (length - 1) / BlockSize;
        nuint at = 0;
        for (int b = 0; b < blocks; b++)
        {
            for (int n = 0; n < StripesPerBlock; n++, at += StripeSize)
            {
                acc0 = AccumulateAvx2(acc0, Vector256.LoadUnsafe(ref d, at), Vector256.LoadUnsafe(ref s, (nuint)(n * 8)));
                acc1 = AccumulateAvx2(acc1, Vector256.LoadUnsafe(ref d, at + 32), Vector256.LoadUnsafe(ref s, (nuint)(n * 8 + 32)));
            }
            acc0 = ScrambleAvx2(acc0, scramble0, prime);
            acc1 = ScrambleAvx2(acc1, scramble1, prime);
        }
        int stripes = (length - 1 - blocks * BlockSize) / StripeSize;
        for (int n = 0; n < stripes; n++, at += StripeSize)
        {
            acc0 = AccumulateAvx2(acc0, Vector256.LoadUnsafe(ref d, at), Vector256.LoadUnsafe(ref s, (nuint)(n * 8)));
            acc1 = AccumulateAvx2(acc1, Vector256.LoadUnsafe(ref d, at + 32), Vector256.LoadUnsafe(ref s, (nuint)(n * 8 + 32)));
        }
        nuint last = (nuint)(length - StripeSize);
        acc0 = AccumulateAvx2(acc0, Vector256.LoadUnsafe(ref d, last), Vector256.LoadUnsafe(ref s, LastStripeSecretOffset));
        acc1 = AccumulateAvx2(acc1, Vector256.LoadUnsafe(ref d, last + 32), Vector256.LoadUnsafe(ref s, LastStripeSecretOffset + 32));

        ulong result = (ulong)length * Prime64_1;
        result += Fold(acc0.GetElement(0) ^ Read64(ref s, MergeSecretOffset), acc0.GetElement(1) ^ Read64(ref s, MergeSecretOffset + 8));
        result += Fold(acc0.GetElement(2) ^ Read64(ref s, MergeSecretOffset + 16), acc0.GetElement(3) ^ Read64(ref s, MergeSecretOffset + 24));
        result += Fold(acc1.GetElement(0) ^ Read64(ref s, MergeSecretOffset + 32), acc1.GetElement(1) ^ Read64(ref s, MergeSecretOffset + 40));
        result += Fold(acc1.GetElement(2) ^ Read64(ref s, MergeSecretOffset + 48), acc1.GetElement(3) ^ Read64(ref s, MergeSecretOffset + 56));
        return Avalanche(result);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<ulong> AccumulateAvx2(Vector256<ulong> acc, Vector256<byte> stripe, Vector256<byte> secret)
    {
        var value = stripe.AsUInt64();
        var key = value ^ secret.AsUInt64();
        // vpmuludq multiplies the low 32 bits of each 64-bit lane: key's low half times its high half.
        var product = Avx2.Multiply(key.AsUInt32(), (key >> 32).AsUInt32());
        // 0b01_00_11_10 swaps the two 64-bit lanes of each 128-bit half: lane i's input goes to accumulator i ^ 1.
        var swapped = Avx2.Shuffle(value.AsUInt32(), 0b01_00_11_10).AsUInt64();
        // One add on the accumulator's dependency chain per stripe, not two.
        return acc + (swapped + product);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<ulong> ScrambleAvx2(Vector256<ulong> acc, Vector256<ulong> secret, Vector256<uint> prime)
    {
        acc ^= acc >> 47;
        acc ^= secret;
        // A 64-bit lane times a 32-bit constant, from two 32x32->64 products (AVX2 has no 64-bit lane multiply).
        var low = Avx2.Multiply(acc.AsUInt32(), prime);
        var high = Avx2.Multiply((acc >> 32).AsUInt32(), prime);
        return low + (high << 32);
    }

    /// <summary>The stripe loop with four 128-bit accumulators (SSE2).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static ulong HashLongSse2(ReadOnlySpan<byte> data)
    {
        if (!Sse2.IsSupported) throw new PlatformNotSupportedException("this CPU has no SSE2.");
        if (data.Length <= 240) throw new ArgumentException($"the long-input path takes more than 240 bytes, got {data.Length}.", nameof(data));
        int length = data.Length;
        ref byte d = ref MemoryMarshal.GetReference(data);
        ref byte s = ref MemoryMarshal.GetReference(Secret);
        var acc0 = Vector128.Create(Prime32_3, Prime64_1);
        var acc1 = Vector128.Create(Prime64_2, Prime64_3);
        var acc2 = Vector128.Create(Prime64_4, Prime32_2);
        var acc3 = Vector128.Create(Prime64_5, Prime32_1);
        var prime = Vector128.Create(Prime32_1).AsUInt32();

        int blocks = (length - 1) / BlockSize;
        nuint at = 0;
        for (int b = 0; b < blocks; b++)
        {
            for (int n = 0; n < StripesPerBlock; n++, at += StripeSize)
            {
                nuint k = (nuint)(n * 8);
                acc0 = AccumulateSse2(acc0, Vector128.LoadUnsafe(ref d, at), Vector128.LoadUnsafe(ref s, k));
                acc1 = AccumulateSse2(acc1, Vector128.LoadUnsafe(ref d, at + 16), Vector128.LoadUnsafe(ref s, k + 16));
                acc2 = AccumulateSse2(acc2, Vector128.LoadUnsafe(ref d, at + 32), Vector128.LoadUnsafe(ref s, k + 32));
                acc3 = AccumulateSse2(acc3, Vector128.LoadUnsafe(ref d, at + 48), Vector128.LoadUnsafe(ref s, k + 48));
            }
            acc0 = ScrambleSse2(acc0, Vector128.LoadUnsafe(ref s, ScrambleOffset).AsUInt64(), prime);
            acc1 = ScrambleSse2(acc1, Vector128.LoadUnsafe(ref s, ScrambleOffset + 16).AsUInt64(), prime);
            acc2 = ScrambleSse2(acc2, Vector128.LoadUnsafe(ref s, ScrambleOffset + 32).AsUInt64(), prime);
            acc3 = ScrambleSse2(acc3, Vector128.LoadUnsafe(ref s, ScrambleOffset + 48).AsUInt64(), prime);
        }
        int stripes = (length - 1 - blocks * BlockSize) / StripeSize;
        for (int n = 0; n < stripes; n++, at += StripeSize)
        {
            nuint k = (nuint)(n * 8);
            acc0 = AccumulateSse2(acc0, Vector128.LoadUnsafe(ref d, at), Vector128.LoadUnsafe(ref s, k));
            acc1 = AccumulateSse2(acc1, Vector128.LoadUnsafe(ref d, at + 16), Vector128.LoadUnsafe(ref s, k + 16));
            acc2 = AccumulateSse2(acc2, Vector128.LoadUnsafe(ref d, at + 32), Vector128.LoadUnsafe(ref s, k + 32));
            acc3 = AccumulateSse2(acc3, Vector128.LoadUnsafe(ref d, at + 48), Vector128.LoadUnsafe(ref s, k + 48));
        }
        nuint last = (nuint)(length - StripeSize);
        const nuint lk = LastStripeSecretOffset;
        acc0 = AccumulateSse2(acc0, Vector128.LoadUnsafe(ref d, last), Vector128.LoadUnsafe(ref s, lk));
        acc1 = AccumulateSse2(acc1, Vector128.LoadUnsafe(ref d, last + 16), Vector128.LoadUnsafe(ref s, lk + 16));
        acc2 = AccumulateSse2(acc2, Vector128.LoadUnsafe(ref d, last + 32), Vector128.LoadUnsafe(ref s, lk + 32));
        acc3 = AccumulateSse2(acc3, Vector128.LoadUnsafe(ref d, last + 48), Vector128.LoadUnsafe(ref s, lk + 48));

        ulong result = (ulong)length * Prime64_1;
        result += Fold(acc0.GetElement(0) ^ Read64(ref s, MergeSecretOffset), acc0.GetElement(1) ^ Read64(ref s, MergeSecretOffset + 8));
        result += Fold(acc1.GetElement(0) ^ Read64(ref s, MergeSecretOffset + 16), acc1.GetElement(1) ^ Read64(ref s, MergeSecretOffset + 24));
        result += Fold(acc2.GetElement(0) ^ Read64(ref s, MergeSecretOffset + 32), acc2.GetElement(1) ^ Read64(ref s, MergeSecretOffset + 40));
        result += Fold(acc3.GetElement(0) ^ Read64(ref s, MergeSecretOffset + 48), acc3.GetElement(1) ^ Read64(ref s, MergeSecretOffset + 56));
        return Avalanche(result);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<ulong> AccumulateSse2(Vector128<ulong> acc, Vector128<byte> stripe, Vector128<byte> secret)
    {
        var value = stripe.AsUInt64();
        var key = value ^ secret.AsUInt64();
        var product = Sse2.Multiply(key.AsUInt32(), (key >> 32).AsUInt32());
        var swapped = Sse2.Shuffle(value.AsUInt32(), 0b01_00_11_10).AsUInt64();
        return acc + (swapped + product);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<ulong> ScrambleSse2(Vector128<ulong> acc, Vector128<ulong> secret, Vector128<uint> prime)
    {
        acc ^= acc >> 47;
        acc ^= secret;
        var low = Sse2.Multiply(acc.AsUInt32(), prime);
        var high = Sse2.Multiply((acc >> 32).AsUInt32(), prime);
        return low + (high << 32);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Fold(ulong a, ulong b)
    {
        ulong high = Math.BigMul(a, b, out ulong low);
        return low ^ high;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Avalanche(ulong x)
    {
        x ^= x >> 37;
        x *= PrimeMx1;
        return x ^ (x >> 32);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong AvalancheXxh64(ulong x)
    {
        x ^= x >> 33;
        x *= Prime64_2;
        x ^= x >> 29;
        x *= Prime64_3;
        return x ^ (x >> 32);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Read64(ref byte b, int offset)
    {
        ulong v = Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref b, offset));
        return BitConverter.IsLittleEndian ? v : BinaryPrimitives.ReverseEndianness(v);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Read32(ref byte b, int offset)
    {
        uint v = Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref b, offset));
        return BitConverter.IsLittleEndian ? v : BinaryPrimitives.ReverseEndianness(v);
    }
}
