using System.Text.Json;
using Google.Protobuf;

namespace MigrationFabric.Grains.Serialization;

/// <summary>Serializes grain-call arguments and results by their declared type.</summary>
/// <remarks>
/// Encodings: integers as (zig-zag) varints, floating point as 8 fixed bytes, strings as UTF-8 and
/// byte arrays as length-prefixed bytes, protobuf messages (IMessage) by their own wire format,
/// Guid/TimeSpan/DateTime/DateTimeOffset natively, and every other type (records, enums, arrays,
/// collections) through System.Text.Json. Reference types carry a one-byte null marker. The codec
/// for a type is chosen once, on first use, and cached in a static generic field; calls then run
/// without reflection (System.Text.Json caches its own metadata per type).
/// </remarks>
public static class GrainCodec
{
    /// <summary>Writes <paramref name="value"/> as a <typeparamref name="T"/>.</summary>
    public static void Write<T>(GrainWriter writer, T value) => CodecOf<T>.Instance.Write(writer, value);

    /// <summary>Reads a <typeparamref name="T"/>.</summary>
    public static T Read<T>(ref GrainReader reader) => CodecOf<T>.Instance.Read(ref reader);

    private static class CodecOf<T>
    {
        public static readonly ValueCodec<T> Instance = (ValueCodec<T>)Create(typeof(T));
    }

    private static object Create(Type t)
    {
        if (t == typeof(int)) return new Int32Codec();
        if (t == typeof(long)) return new Int64Codec();
        if (t == typeof(uint)) return new UInt32Codec();
        if (t == typeof(ulong)) return new UInt64Codec();
        if (t == typeof(bool)) return new BoolCodec();
        if (t == typeof(double)) return new DoubleCodec();
        if (t == typeof(string)) return new StringCodec();
        if (t == typeof(byte[])) return new ByteArrayCodec();
        if (t == typeof(ReadOnlyMemory<byte>)) return new ReadOnlyMemoryCodec();
        if (t == typeof(Guid)) return new GuidCodec();
        if (t == typeof(TimeSpan)) return new TimeSpanCodec();
        if (t == typeof(DateTime)) return new DateTimeCodec();
        if (t == typeof(DateTimeOffset)) return new DateTimeOffsetCodec();
        if (IsProtobufMessage(t))
            return Activator.CreateInstance(typeof(ProtobufCodec<>).MakeGenericType(t))!;
        return Activator.CreateInstance(typeof(JsonCodec<>).MakeGenericType(t))!;
    }

    private static bool IsProtobufMessage(Type t)
    {
        if (!typeof(IMessage).IsAssignableFrom(t) || t.GetConstructor(Type.EmptyTypes) is null) return false;
        foreach (var i in t.GetInterfaces())
            if (i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IMessage<>) && i.GenericTypeArguments[0] == t)
                return true;
        return false;
    }
}

/// <summary>Encodes one type.</summary>
public abstract class ValueCodec<T>
{
    /// <summary>Writes a value.</summary>
    public abstract void Write(GrainWriter writer, T value);

    /// <summary>Reads a value.</summary>
    public abstract T Read(ref GrainReader reader);
}

internal sealed class Int32Codec : ValueCodec<int>
{
    public override void Write(GrainWriter w, int v) => w.WriteVarInt64(v);
    public override int Read(ref GrainReader r) => checked((int)r.ReadVarInt64());
}

internal sealed class Int64Codec : ValueCodec<long>
{
    public override void Write(GrainWriter w, long v) => w.WriteVarInt64(v);
    public override long Read(ref GrainReader r) => r.ReadVarInt64();
}

internal sealed class UInt32Codec : ValueCodec<uint>
{
    public override void Write(GrainWriter w, uint v) => w.WriteVarUInt64(v);
    public override uint Read(ref GrainReader r) => checked((uint)r.ReadVarUInt64());
}

internal sealed class UInt64Codec : ValueCodec<ulong>
{
    public override void Write(GrainWriter w, ulong v) => w.WriteVarUInt64(v);
    public override ulong Read(ref GrainReader r) => r.ReadVarUInt64();
}

internal sealed class BoolCodec : ValueCodec<bool>
{
    public override void Write(GrainWriter w, bool v) => w.WriteByte(v ? (byte)1 : (byte)0);
    public override bool Read(ref GrainReader r) => r.ReadByte() switch
    {
        0 => false,
        1 => true,
        var b => throw new GrainSerializationException($"a bool byte is {b}, not 0 or 1"),
    };
}

internal sealed class DoubleCodec : ValueCodec<double>
{
    public override void Write(GrainWriter w, double v) => w.WriteFixed64(BitConverter.DoubleToUInt64Bits(v));
    public override double Read(ref GrainReader r) => BitConverter.UInt64BitsToDouble(r.ReadFixed64());
}

internal sealed class StringCodec : ValueCodec<string>
{
    public override void Write(GrainWriter w, string v) => w.WriteString(v);
    public override string Read(ref GrainReader r) => r.ReadString()!;
}

internal sealed class ByteArrayCodec : ValueCodec<byte[]>
{
    public override void Write(GrainWriter w, byte[] v)
    {
        if (v is null) { w.WriteByte(0); return; }
        w.WriteByte(1);
        w.WriteBytes(v);
    }

    public override byte[] Read(ref GrainReader r) => r.ReadByte() == 0 ? null! : r.ReadBytes().ToArray();
}

internal sealed class ReadOnlyMemoryCodec : ValueCodec<ReadOnlyMemory<byte>>
{
    public override void Write(GrainWriter w, ReadOnlyMemory<byte> v) => w.WriteBytes(v.Span);
    public override ReadOnlyMemory<byte> Read(ref GrainReader r) => r.ReadBytes().ToArray();
}

internal sealed class GuidCodec : ValueCodec<Guid>
{
    public override void Write(GrainWriter w, Guid v)
    {
        v.TryWriteBytes(w.GetSpan(16));
        w.Advance(16);
    }

    public override Guid Read(ref GrainReader r)
    {
        var bytes = r.ReadBytesFixed(16);
        return new Guid(bytes);
    }
}

internal sealed class TimeSpanCodec : ValueCodec<TimeSpan>
{
    public override void Write(GrainWriter w, TimeSpan v) => w.WriteVarInt64(v.Ticks);
    public override TimeSpan Read(ref GrainReader r) => TimeSpan.FromTicks(r.ReadVarInt64());
}

internal sealed class DateTimeCodec : ValueCodec<DateTime>
{
    public override void Write(GrainWriter w, DateTime v) => w.WriteVarInt64(v.ToBinary());
    public override DateTime Read(ref GrainReader r) => DateTime.FromBinary(r.ReadVarInt64());
}

internal sealed class DateTimeOffsetCodec : ValueCodec<DateTimeOffset>
{
    public override void Write(GrainWriter w, DateTimeOffset v)
    {
        w.WriteVarInt64(v.UtcTicks);
        w.WriteVarInt64(v.Offset.Ticks);
    }

    public override DateTimeOffset Read(ref GrainReader r)
    {
        long utc = r.ReadVarInt64();
        var offset = TimeSpan.FromTicks(r.ReadVarInt64());
        return new DateTimeOffset(utc + offset.Ticks, offset);
    }
}

internal sealed class ProtobufCodec<T> : ValueCodec<T> where T : IMessage<T>, new()
{
    private static readonly MessageParser<T> Parser = new(() => new T());

    public override void Write(GrainWriter w, T v)
    {
        if (v is null) { w.WriteByte(0); return; }
        w.WriteByte(1);
        int size = v.CalculateSize();
        w.WriteVarUInt64((ulong)size);
        var span = w.GetSpan(size)[..size];
        v.WriteTo(span);
        w.Advance(size);
    }

    public override T Read(ref GrainReader r)
    {
        if (r.ReadByte() == 0) return default!;
        var bytes = r.ReadBytes();
        try
        {
            return Parser.ParseFrom(bytes);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new GrainSerializationException($"a {typeof(T).Name} protobuf message is invalid: {e.Message}", e);
        }
    }
}

internal sealed class JsonCodec<T> : ValueCodec<T>
{
    public override void Write(GrainWriter w, T v) => w.WriteBytes(JsonSerializer.SerializeToUtf8Bytes(v));

    public override T Read(ref GrainReader r)
    {
        var bytes = r.ReadBytes();
        try
        {
            return JsonSerializer.Deserialize<T>(bytes)!;
        }
        catch (JsonException e)
        {
            throw new GrainSerializationException($"a {typeof(T).Name} value is not valid JSON: {e.Message}", e);
        }
    }
}
