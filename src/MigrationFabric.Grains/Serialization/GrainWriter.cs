using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace MigrationFabric.Grains.Serialization;

/// <summary>Appends the runtime's compact binary encoding (varints, length-prefixed bytes and UTF-8) to a buffer.</summary>
public sealed class GrainWriter
{
    private readonly ArrayBufferWriter<byte> _buffer;

    /// <summary>A writer over a fresh buffer.</summary>
    public GrainWriter(int initialCapacity = 256) => _buffer = new ArrayBufferWriter<byte>(initialCapacity);

    /// <summary>What was written so far.</summary>
    public ReadOnlyMemory<byte> WrittenMemory => _buffer.WrittenMemory;

    /// <summary>Bytes written so far.</summary>
    public int Length => _buffer.WrittenCount;

    /// <summary>Forgets what was written (keeps the buffer).</summary>
    public void Reset() => _buffer.ResetWrittenCount();

    /// <summary>One byte.</summary>
    public void WriteByte(byte value)
    {
        _buffer.GetSpan(1)[0] = value;
        _buffer.Advance(1);
    }

    /// <summary>An unsigned LEB128 varint.</summary>
    public void WriteVarUInt64(ulong value)
    {
        var span = _buffer.GetSpan(10);
        int i = 0;
        while (value >= 0x80)
        {
            span[i++] = (byte)(value | 0x80);
            value >>= 7;
        }
        span[i++] = (byte)value;
        _buffer.Advance(i);
    }

    /// <summary>A zig-zag varint.</summary>
    public void WriteVarInt64(long value) => WriteVarUInt64((ulong)((value << 1) ^ (value >> 63)));

    /// <summary>Eight little-endian bytes.</summary>
    public void WriteFixed64(ulong value)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(_buffer.GetSpan(8), value);
        _buffer.Advance(8);
    }

    /// <summary>Raw bytes, no length.</summary>
    public void WriteRaw(ReadOnlySpan<byte> bytes) => _buffer.Write(bytes);

    /// <summary>A length-prefixed byte string.</summary>
    public void WriteBytes(ReadOnlySpan<byte> bytes)
    {
        WriteVarUInt64((ulong)bytes.Length);
        _buffer.Write(bytes);
    }

    /// <summary>A length-prefixed UTF-8 string; null is written as a distinct marker.</summary>
    public void WriteString(string? value)
    {
        if (value is null) { WriteVarUInt64(0); return; }
        int count = Encoding.UTF8.GetByteCount(value);
        WriteVarUInt64((ulong)count + 1);
        var span = _buffer.GetSpan(count);
        Encoding.UTF8.GetBytes(value, span);
        _buffer.Advance(count);
    }

    /// <summary>Space for <paramref name="size"/> bytes written in place; call <see cref="Advance"/> after.</summary>
    public Span<byte> GetSpan(int size) => _buffer.GetSpan(size);

    /// <summary>Commits bytes written into <see cref="GetSpan"/>.</summary>
    public void Advance(int count) => _buffer.Advance(count);
}
