using System.Buffers.Binary;
using System.Numerics;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;

namespace MigrationFabric.Memory.Workloads;

/// <summary>A memcached-like key-value store whose hash table and values live in guest memory; GET/SET mix, ops/s, every GET checked.</summary>
/// <remarks>
/// Each vCPU owns a shard: an open-addressing table of 16-byte buckets (key + 1, value slot + 1) followed by
/// fixed-size value slots. A value is (key, version, mix(key, version, i)...). The workload keeps each key's
/// last SET version outside guest memory, so a GET that returns anything but what the last SET stored is
/// counted in <see cref="CorruptReads"/>: a migration that loses or mixes up a page shows here.
/// </remarks>
public sealed class KeyValueStoreWorkload(KeyValueStoreOptions? options = null, TimeProvider? time = null)
    : Workload("kv", "ops/s", (options ?? new()).Vcpus, (options ?? new()).SampleInterval, time)
{
    private readonly KeyValueStoreOptions _options = options ?? new();
    private long _tableBytes, _shardPages, _capacity;
    private int _capacityBits;
    private long _gets, _sets, _misses, _corrupt;
    private string? _firstCorruption;

    /// <summary>GETs done.</summary>
    public long Gets => Interlocked.Read(ref _gets);

    /// <summary>SETs done.</summary>
    public long Sets => Interlocked.Read(ref _sets);

    /// <summary>GETs of keys never SET (expected before preload only).</summary>
    public long Misses => Interlocked.Read(ref _misses);

    /// <summary>GETs that did not return what the last SET stored.</summary>
    public long CorruptReads => Interlocked.Read(ref _corrupt);

    /// <summary>What the first corrupt GET saw, for the error report.</summary>
    public string? FirstCorruption => Volatile.Read(ref _firstCorruption);

    /// <summary>Guest pages one shard occupies (table then values).</summary>
    public long ShardPages => _shardPages;

    /// <summary>First guest page of shard <paramref name="shard"/>'s value slots.</summary>
    public long ValuePagesStart(int shard) => _options.StartPage + shard * _shardPages + _tableBytes / Page.Size;

    /// <inheritdoc/>
    protected override void Prepare(SoftwareMmu mmu)
    {
        var o = _options;
        if (o.Keys < 1) throw new ArgumentException($"kv: Keys must be at least 1, was {o.Keys}.", nameof(KeyValueStoreOptions.Keys));
        if (o.ValueBytes < 16 || o.ValueBytes > Page.Size || o.ValueBytes % 8 != 0)
            throw new ArgumentException($"kv: ValueBytes must be a multiple of 8 within 16..{Page.Size}, was {o.ValueBytes}.", nameof(KeyValueStoreOptions.ValueBytes));
        if (double.IsNaN(o.GetFraction) || o.GetFraction < 0 || o.GetFraction > 1)
            throw new ArgumentException($"kv: GetFraction must be within 0..1, was {o.GetFraction}.", nameof(KeyValueStoreOptions.GetFraction));
        _capacity = (long)BitOperations.RoundUpToPowerOf2((ulong)o.Keys * 2);
        _capacityBits = BitOperations.Log2((ulong)_capacity);
        _tableBytes = RoundToPage(_capacity * 16);
        _shardPages = (_tableBytes + RoundToPage((long)o.Keys * o.ValueBytes)) / Page.Size;
        o.ValidateRegion("kv", mmu.Memory.PageCount, _shardPages * Vcpus);
    }

    /// <inheritdoc/>
    protected override void RunVcpu(VirtualCpu cpu, int index, CancellationToken cancellationToken)
    {
        var o = _options;
        long tableBase = (o.StartPage + index * _shardPages) << Page.Shift;
        long valuesBase = tableBase + _tableBytes;
        var versions = new ulong[o.Keys];
        long nextSlot = 0;
        var rng = new Random(o.Seed * 104729 + index);
        Span<byte> value = stackalloc byte[o.ValueBytes];
        Span<byte> expected = stackalloc byte[o.ValueBytes];

        if (o.Preload)
            for (int k = 0; k < o.Keys; k++)
            {
                Set(cpu, tableBase, valuesBase, k, versions, ref nextSlot, value);
                Count(index, 1);
                if ((k & 1023) == 0) cancellationToken.ThrowIfCancellationRequested();
            }

        long ops = 0;
        while (true)
        {
            if ((++ops & 255) == 0) cancellationToken.ThrowIfCancellationRequested();
            int key = rng.Next(o.Keys);
            if (rng.NextDouble() < o.GetFraction)
            {
                Get(cpu, tableBase, valuesBase, key, versions[key], value, expected);
                Interlocked.Increment(ref _gets);
            }
            else
            {
                Set(cpu, tableBase, valuesBase, key, versions, ref nextSlot, value);
                Interlocked.Increment(ref _sets);
            }
            Count(index, 1);
        }
    }

    private void Set(VirtualCpu cpu, long tableBase, long valuesBase, int key, ulong[] versions, ref long nextSlot, Span<byte> value)
    {
        long bucket = FindBucket(cpu, tableBase, key, out bool found);
        long slot;
        if (found) slot = (long)cpu.ReadUInt64(bucket + 8) - 1;
        else
        {
            slot = nextSlot++;
            cpu.WriteUInt64(bucket + 8, (ulong)slot + 1);
            cpu.WriteUInt64(bucket, (ulong)key + 1);
        }
        ulong version = ++versions[key];
        Encode(key, version, value);
        cpu.Write(valuesBase + slot * _options.ValueBytes, value);
    }

    private void Get(VirtualCpu cpu, long tableBase, long valuesBase, int key, ulong version, Span<byte> value, Span<byte> expected)
    {
        long bucket = FindBucket(cpu, tableBase, key, out bool found);
        if (!found)
        {
            Interlocked.Increment(ref _misses);
            if (version != 0) Corrupt($"key {key} (last SET version {version}) is missing from the table");
            return;
        }
        long slot = (long)cpu.ReadUInt64(bucket + 8) - 1;
        if (slot < 0 || slot >= _options.Keys)
        {
            Corrupt($"key {key} points at value slot {slot}, outside 0..{_options.Keys - 1}");
            return;
        }
        cpu.Read(valuesBase + slot * _options.ValueBytes, value);
        Encode(key, version, expected);
        if (!value.SequenceEqual(expected))
        {
            Corrupt($"GET key {key} returned (key {BinaryPrimitives.ReadUInt64LittleEndian(value)}, version {BinaryPrimitives.ReadUInt64LittleEndian(value[8..])}), last SET stored version {version}");
        }
    }

    private long FindBucket(VirtualCpu cpu, long tableBase, int key, out bool found)
    {
        long mask = _capacity - 1;
        long i = (long)(((ulong)key * 0x9E3779B97F4A7C15UL) >> (64 - _capacityBits)) & mask;
        for (long probes = 0; probes < _capacity; probes++, i = (i + 1) & mask)
        {
            long bucket = tableBase + i * 16;
            ulong stored = cpu.ReadUInt64(bucket);
            if (stored == (ulong)key + 1) { found = true; return bucket; }
            if (stored == 0) { found = false; return bucket; }
        }
        throw new InvalidOperationException($"kv: the hash table of {_capacity} buckets is full of foreign keys (guest memory corrupted).");
    }

    private static void Encode(int key, ulong version, Span<byte> value)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(value, (ulong)key);
        BinaryPrimitives.WriteUInt64LittleEndian(value[8..], version);
        ulong x = ((ulong)key << 32) ^ version;
        for (int i = 16; i < value.Length; i += 8)
        {
            x += 0x9E3779B97F4A7C15UL;
            ulong z = x;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            BinaryPrimitives.WriteUInt64LittleEndian(value[i..], z ^ (z >> 31));
        }
    }

    private void Corrupt(string what)
    {
        Interlocked.Increment(ref _corrupt);
        Interlocked.CompareExchange(ref _firstCorruption, what, null);
    }

    private static long RoundToPage(long bytes) => (bytes + Page.Size - 1) & ~(long)(Page.Size - 1);
}
