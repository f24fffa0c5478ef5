using System.Buffers.Binary;
using System.Text;
using MigrationFabric.Memory.Integrity;

namespace MigrationFabric.Memory.Workloads;

/// <summary>The versioned binary blob a workload's vCPU state travels in (the switch-over's device state).</summary>
/// <remarks>
/// Little-endian: magic "MFWS", format version (u16), workload kind (u8 length + ASCII), vCPU count (u16), then per
/// vCPU its operation counter (i64) and its registers (u32 length + bytes), then XXH64 of everything before it.
/// </remarks>
public static class WorkloadStateFormat
{
    /// <summary>The format version this build writes and reads.</summary>
    public const ushort Version = 1;

    private static ReadOnlySpan<byte> Magic => "MFWS"u8;
    private const int MinimumLength = 4 + 2 + 1 + 2 + 8;

    /// <summary>One vCPU's part of the blob.</summary>
    /// <param name="Operations">The vCPU's operation counter at its last commit.</param>
    /// <param name="Registers">Its registers as <see cref="VcpuState.Save"/> wrote them (empty for a stateless vCPU).</param>
    public readonly record struct VcpuRecord(long Operations, byte[] Registers);

    /// <summary>Encodes the state of workload <paramref name="kind"/>.</summary>
    public static byte[] Write(string kind, IReadOnlyList<VcpuRecord> vcpus)
    {
        var name = Encoding.ASCII.GetBytes(kind);
        if (name.Length is 0 or > 255) throw new ArgumentException($"workload kind '{kind}' must be 1..255 ASCII characters.", nameof(kind));
        if (vcpus.Count > ushort.MaxValue) throw new ArgumentException($"{vcpus.Count} vCPUs do not fit the format (at most {ushort.MaxValue}).", nameof(vcpus));
        int length = MinimumLength + name.Length;
        for (int i = 0; i < vcpus.Count; i++) length += 8 + 4 + vcpus[i].Registers.Length;
        var blob = new byte[length];
        var s = blob.AsSpan();
        Magic.CopyTo(s);
        BinaryPrimitives.WriteUInt16LittleEndian(s[4..], Version);
        s[6] = (byte)name.Length;
        name.CopyTo(s[7..]);
        int at = 7 + name.Length;
        BinaryPrimitives.WriteUInt16LittleEndian(s[at..], (ushort)vcpus.Count);
        at += 2;
        for (int i = 0; i < vcpus.Count; i++)
        {
            BinaryPrimitives.WriteInt64LittleEndian(s[at..], vcpus[i].Operations);
            BinaryPrimitives.WriteUInt32LittleEndian(s[(at + 8)..], (uint)vcpus[i].Registers.Length);
            vcpus[i].Registers.CopyTo(s[(at + 12)..]);
            at += 12 + vcpus[i].Registers.Length;
        }
        BinaryPrimitives.WriteUInt64LittleEndian(s[at..], Xxh64.Hash(s[..at]));
        return blob;
    }

    /// <summary>Decodes a blob for workload <paramref name="kind"/> with <paramref name="vcpus"/> vCPUs; throws <see cref="InvalidDataException"/> naming what is wrong.</summary>
    public static VcpuRecord[] Read(ReadOnlySpan<byte> blob, string kind, int vcpus)
    {
        if (blob.Length < MinimumLength)
            throw new InvalidDataException($"workload state of {blob.Length} bytes is shorter than the smallest valid blob ({MinimumLength} bytes): truncated or not a workload state.");
        if (!blob[..4].SequenceEqual(Magic))
            throw new InvalidDataException($"workload state does not start with the magic 'MFWS' (starts with 0x{Convert.ToHexString(blob[..4])}): not a workload state blob.");
        ushort version = BinaryPrimitives.ReadUInt16LittleEndian(blob[4..]);
        if (version != Version)
            throw new InvalidDataException($"workload state has format version {version}; this build reads version {Version}.");
        ulong stored = BinaryPrimitives.ReadUInt64LittleEndian(blob[^8..]);
        ulong computed = Xxh64.Hash(blob[..^8]);
        if (stored != computed)
            throw new InvalidDataException($"workload state checksum mismatch (stored {stored:x16}, computed {computed:x16}): the blob is garbled or truncated.");
        int nameLength = blob[6];
        var body = blob[..^8];
        if (body.Length < 7 + nameLength + 2)
            throw new InvalidDataException($"workload state header names a kind of {nameLength} bytes, longer than the blob.");
        string actual = Encoding.ASCII.GetString(body.Slice(7, nameLength));
        if (actual != kind)
            throw new InvalidDataException($"workload state is for workload '{actual}', this workload is '{kind}'.");
        int at = 7 + nameLength;
        int count = BinaryPrimitives.ReadUInt16LittleEndian(body[at..]);
        if (count != vcpus)
            throw new InvalidDataException($"workload state of '{kind}' has {count} vCPUs, this workload has {vcpus} (Vcpus).");
        at += 2;
        var records = new VcpuRecord[count];
        for (int i = 0; i < count; i++)
        {
            if (body.Length - at < 12)
                throw new InvalidDataException($"workload state ends inside vCPU {i}'s header.");
            long ops = BinaryPrimitives.ReadInt64LittleEndian(body[at..]);
            uint length = BinaryPrimitives.ReadUInt32LittleEndian(body[(at + 8)..]);
            at += 12;
            if (ops < 0) throw new InvalidDataException($"workload state gives vCPU {i} a negative operation counter ({ops}).");
            if (length > (uint)(body.Length - at))
                throw new InvalidDataException($"vCPU {i}'s registers of {length} bytes run past the end of the workload state ({body.Length - at} bytes left).");
            records[i] = new VcpuRecord(ops, body.Slice(at, (int)length).ToArray());
            at += (int)length;
        }
        if (at != body.Length)
            throw new InvalidDataException($"workload state has {body.Length - at} bytes after the last vCPU's registers.");
        return records;
    }
}
