using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace MigrationFabric.Memory.Integrity;

/// <summary>XXH64 (Yann Collet's xxHash, 64-bit), written from the published specification: one-shot and streaming.</summary>
public struct Xxh64
{
    private const ulong P1 = 11400714785074694791UL;
    private const ulong P2 = 14029467366897019727UL;
    private const ulong P3 = 1609587929392839161UL;
    private const ulong P4 = 9650029242287828579UL;
    private const ulong P5 = 2870177450012600261UL;

    private ulong _v1, _v2, _v3, _v4;
    private readonly ulong _seed;
    private ulong _length;
    private Buffer32 _buffer;
    private int _buffered;

    [InlineArray(32)]
    private struct Buffer32 { private byte _b; }

    /// <summary>Starts a streaming hash with <paramref name="seed"/>.</summary>
    public Xxh64(ulong seed)
    {
        _seed = seed;
        _v1 = seed + P1 + P2;
        _v2 = seed + P2;
        _v3 = seed;
        _v4 = seed - P1;
    }

    /// <summary>XXH64 of <paramref name="data"/> in one call.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)] // Every page is hashed on both sides of a migration: run optimized from the first call instead of tier-0 for the first seconds.
    public static ulong Hash(ReadOnlySpan<byte> data, ulong seed = 0)
    {
        ulong h;
        int i = 0;
        if (data.Length >= 32)
        {
            // Stripes read through a ref without bounds checks: this loop is the whole cost of a page digest.
            ref byte b = ref MemoryMarshal.GetReference(data);
            ulong v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;
            int limit = data.Length - 32;
            do
            {
                v1 = Round(v1, ReadLE(ref b, i));
                v2 = Round(v2, ReadLE(ref b, i + 8));
                v3 = Round(v3, ReadLE(ref b, i + 16));
                v4 = Round(v4, ReadLE(ref b, i + 24));
                i += 32;
            } while (i <= limit);
            h = Converge(v1, v2, v3, v4);
        }
        else
        {
            h = seed + P5;
        }
        h += (ulong)data.Length;
        return Finish(h, data[i..]);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong ReadLE(ref byte b, int offset)
    {
        ulong v = Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref b, offset));
        return BitConverter.IsLittleEndian ? v : BinaryPrimitives.ReverseEndianness(v);
    }

    /// <summary>Adds <paramref name="data"/> to a streaming hash.</summary>
    public void Append(ReadOnlySpan<byte> data)
    {
        _length += (ulong)data.Length;
        Span<byte> buf = _buffer;
        if (_buffered > 0)
        {
            int take = Math.Min(32 - _buffered, data.Length);
            data[..take].CopyTo(buf[_buffered..]);
            _buffered += take;
            data = data[take..];
            if (_buffered < 32) return;
            Stripe(buf);
            _buffered = 0;
        }
        while (data.Length >= 32)
        {
            Stripe(data);
            data = data[32..];
        }
        data.CopyTo(buf);
        _buffered = data.Length;
    }

    /// <summary>Adds one little-endian 64-bit value (e.g. a page digest) to a streaming hash.</summary>
    public void AppendUInt64(ulong value)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, value);
        Append(b);
    }

    /// <summary>The hash of everything appended so far (the state is left as is).</summary>
    public readonly ulong Digest()
    {
        ulong h = _length >= 32 ? Converge(_v1, _v2, _v3, _v4) : _seed + P5;
        h += _length;
        ReadOnlySpan<byte> rest = _buffer;
        return Finish(h, rest[.._buffered]);
    }

    private void Stripe(ReadOnlySpan<byte> s)
    {
        _v1 = Round(_v1, BinaryPrimitives.ReadUInt64LittleEndian(s));
        _v2 = Round(_v2, BinaryPrimitives.ReadUInt64LittleEndian(s[8..]));
        _v3 = Round(_v3, BinaryPrimitives.ReadUInt64LittleEndian(s[16..]));
        _v4 = Round(_v4, BinaryPrimitives.ReadUInt64LittleEndian(s[24..]));
    }

    private static ulong Converge(ulong v1, ulong v2, ulong v3, ulong v4)
    {
        ulong h = BitOperations.RotateLeft(v1, 1) + BitOperations.RotateLeft(v2, 7)
                + BitOperations.RotateLeft(v3, 12) + BitOperations.RotateLeft(v4, 18);
        h = MergeRound(h, v1);
        h = MergeRound(h, v2);
        h = MergeRound(h, v3);
        return MergeRound(h, v4);
    }

    private static ulong Finish(ulong h, ReadOnlySpan<byte> rest)
    {
        int i = 0;
        for (; i + 8 <= rest.Length; i += 8)
        {
            h ^= Round(0, BinaryPrimitives.ReadUInt64LittleEndian(rest[i..]));
            h = BitOperations.RotateLeft(h, 27) * P1 + P4;
        }
        if (i + 4 <= rest.Length)
        {
            h ^= BinaryPrimitives.ReadUInt32LittleEndian(rest[i..]) * P1;
            h = BitOperations.RotateLeft(h, 23) * P2 + P3;
            i += 4;
        }
        for (; i < rest.Length; i++)
        {
            h ^= rest[i] * P5;
            h = BitOperations.RotateLeft(h, 11) * P1;
        }
        h ^= h >> 33;
        h *= P2;
        h ^= h >> 29;
        h *= P3;
        h ^= h >> 32;
        return h;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Round(ulong acc, ulong input)
    {
        acc += input * P2;
        acc = BitOperations.RotateLeft(acc, 31);
        return acc * P1;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong MergeRound(ulong acc, ulong val)
    {
        acc ^= Round(0, val);
        return acc * P1 + P4;
    }
}
