using System.Buffers.Binary;
using System.Text;

namespace MigrationFabric.Grains.Serialization;

/// <summary>Reads what <see cref="GrainWriter"/> wrote; every read is bounds-checked and fails with a clear message.</summary>
public ref struct GrainReader
{
    private readonly ReadOnlySpan<byte> _data;
    private int _position;

    /// <summary>A reader over <paramref name="data"/>.</summary>
    public GrainReader(ReadOnlySpan<byte> data)
    {
        _data = data;
        _position = 0;
    }

    /// <summary>Bytes not yet read.</summary>
    public readonly int Remaining => _data.Length - _position;

    /// <summary>One byte.</summary>
    public byte ReadByte()
    {
        Need(1);
        return _data[_position++];
    }

    /// <summary>An unsigned LEB128 varint.</summary>
    public ulong ReadVarUInt64()
    {
        ulong result = 0;
        for (int shift = 0; shift < 70; shift += 7)
        {
            byte b = ReadByte();
            result |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return result;
        }
        throw new GrainSerializationException("a varint is longer than 10 bytes");
    }

    /// <summary>A zig-zag varint.</summary>
    public long ReadVarInt64()
    {
        ulong v = ReadVarUInt64();
        return (long)(v >> 1) ^ -(long)(v & 1);
    }

    /// <summary>Eight little-endian bytes.</summary>
    public ulong ReadFixed64()
    {
        Need(8);
        ulong v = BinaryPrimitives.ReadUInt64LittleEndian(_data.Slice(_position, 8));
        _position += 8;
        return v;
    }

    /// <summary>A length-prefixed byte string, as a slice of the input.</summary>
    public ReadOnlySpan<byte> ReadBytes()
    {
        int length = ReadLength();
        var s = _data.Slice(_position, length);
        _position += length;
        return s;
    }

    /// <summary>Exactly <paramref name="count"/> raw bytes (no length prefix).</summary>
    public ReadOnlySpan<byte> ReadBytesFixed(int count)
    {
        Need(count);
        var s = _data.Slice(_position, count);
        _position += count;
        return s;
    }

    /// <summary>A length-prefixed UTF-8 string (or null).</summary>
    public string? ReadString()
    {
        ulong marker = ReadVarUInt64();
        if (marker == 0) return null;
        ulong length = marker - 1;
        if (length > (ulong)Remaining)
            throw new GrainSerializationException($"a string claims {length} bytes but only {Remaining} remain");
        var s = Encoding.UTF8.GetString(_data.Slice(_position, (int)length));
        _position += (int)length;
        return s;
    }

    /// <summary>A string that must not be null.</summary>
    public string ReadRequiredString(string what) =>
        ReadString() ?? throw new GrainSerializationException($"{what} is missing");

    private int ReadLength()
    {
        ulong length = ReadVarUInt64();
        if (length > (ulong)Remaining)
            throw new GrainSerializationException($"a byte string claims {length} bytes but only {Remaining} remain");
        return (int)length;
    }

    private readonly void Need(int count)
    {
        if (_position + count > _data.Length)
            throw new GrainSerializationException($"the message ends early (needed {count} more byte(s) at offset {_position} of {_data.Length})");
    }
}

/// <summary>A grain message or value could not be decoded.</summary>
public sealed class GrainSerializationException(string detail, Exception? inner = null)
    : Exception($"Grain message decoding failed: {detail}.", inner);
