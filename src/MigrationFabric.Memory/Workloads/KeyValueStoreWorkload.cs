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
    private long _corrupt;
    private string? _firstCorruption;

    /// <summary>GETs done (carried across a migration with the vCPU state).</summary>
    public long Gets => Sum(static r => Volatile.Read(ref r.Gets));

    /// <summary>SETs done after the preload (carried across a migration with the vCPU state).</summary>
    public long Sets => Sum(static r => Volatile.Read(ref r.Sets));

    /// <summary>GETs of keys never SET (none once the preload is done; carried across a migration).</summary>
    public long Misses => Sum(static r => Volatile.Read(ref r.Misses));

    /// <summary>Keys preloaded so far, summed over vCPUs (Keys x Vcpus once the preload is done, or 0 without it).</summary>
    public long Preloaded => Sum(static r => Volatile.Read(ref r.PreloadNext));

    /// <summary>Last SET version of each key of vCPU <paramref name="vcpu"/>'s shard (a copy; 0 = never SET), or empty before the workload runs or is restored.</summary>
    public ulong[] VersionsOf(int vcpu) => StateOf(vcpu) is Registers r ? [.. r.Versions] : [];

    /// <summary>GETs here that did not return what the last SET stored (counted where they happen: not carried by a migration).</summary>
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
    protected override VcpuState CreateVcpuState(int index) => new Registers(Math.Max(0, _options.Keys), _options.Preload,
        SplitMix64.For(_options.Seed, index, 0x4B56_5354_4F52_4521UL));

    /// <inheritdoc/>
    protected override void RunVcpu(VirtualCpu cpu, int index, CancellationToken cancellationToken)
    {
        var o = _options;
        var r = (Registers)StateOf(index)!;
        if (r.NextSlot > o.Keys)
            throw new InvalidDataException($"kv: vCPU {index}'s next value slot {r.NextSlot} is beyond its {o.Keys} slots (restored state does not fit).");
        long tableBase = (o.StartPage + index * _shardPages) << Page.Shift;
        long valuesBase = tableBase + _tableBytes;
        Span<byte> value = stackalloc byte[o.ValueBytes];
        Span<byte> expected = stackalloc byte[o.ValueBytes];

        // Each pass is one operation: guest-memory accesses first, then one commit of the registers it changed.
        // Redone from the last commit (the destination after a migration), it writes the same bytes again.
        while (r.PreloadNext < o.Keys)
        {
            int k = r.PreloadNext;
            var (slot, version) = Set(cpu, tableBase, valuesBase, k, r, value);
            BeginCommit(index);
            r.Versions[k] = version;
            r.NextSlot = Math.Max(r.NextSlot, slot + 1);
            r.PreloadNext = k + 1;
            EndCommit(index, 1);
            if ((k & 1023) == 0) cancellationToken.ThrowIfCancellationRequested();
        }

        long ops = 0;
        while (true)
        {
            if ((++ops & 255) == 0) cancellationToken.ThrowIfCancellationRequested();
            var rng = r.Rng;
            int key = (int)rng.NextInt64(o.Keys);
            if (rng.NextDouble() < o.GetFraction)
            {
                bool hit = Get(cpu, tableBase, valuesBase, key, r.Versions[key], value, expected);
                BeginCommit(index);
                r.Rng = rng;
                r.Gets++;
                if (!hit) r.Misses++;
                EndCommit(index, 1);
            }
            else
            {
                var (slot, version) = Set(cpu, tableBase, valuesBase, key, r, value);
                BeginCommit(index);
                r.Rng = rng;
                r.Versions[key] = version;
                r.NextSlot = Math.Max(r.NextSlot, slot + 1);
                r.Sets++;
                EndCommit(index, 1);
            }
        }
    }

    /// <summary>Stores version (last + 1) of <paramref name="key"/>; returns its value slot and the version, for the caller to commit.</summary>
    /// <remarks>
    /// Redone after a pause that hit it midway, it finds the bucket it may already have claimed (with the slot it
    /// chose: the committed next slot) and writes the same value again; the commit's max keeps the next slot right.
    /// </remarks>
    private (long Slot, ulong Version) Set(VirtualCpu cpu, long tableBase, long valuesBase, int key, Registers r, Span<byte> value)
    {
        long bucket = FindBucket(cpu, tableBase, key, out bool found);
        long slot;
        if (found)
        {
            slot = (long)cpu.ReadUInt64(bucket + 8) - 1;
            if (slot < 0 || slot >= _options.Keys)
                throw new InvalidOperationException($"kv: key {key}'s bucket points at value slot {slot}, outside 0..{_options.Keys - 1} (guest memory corrupted).");
        }
        else
        {
            slot = r.NextSlot;
            if (slot >= _options.Keys)
                throw new InvalidOperationException($"kv: no free value slot for key {key} ({_options.Keys} slots used; guest memory or vCPU state corrupted).");
            cpu.WriteUInt64(bucket + 8, (ulong)slot + 1);
            cpu.WriteUInt64(bucket, (ulong)key + 1);
        }
        ulong version = r.Versions[key] + 1;
        Encode(key, version, value);
        cpu.Write(valuesBase + slot * _options.ValueBytes, value);
        return (slot, version);
    }

    /// <summary>Reads <paramref name="key"/> and checks it against <paramref name="version"/>; false when the key is not in the table (a miss).</summary>
    private bool Get(VirtualCpu cpu, long tableBase, long valuesBase, int key, ulong version, Span<byte> value, Span<byte> expected)
    {
        long bucket = FindBucket(cpu, tableBase, key, out bool found);
        if (!found)
        {
            if (version != 0) Corrupt($"key {key} (last SET version {version}) is missing from the table");
            return false;
        }
        long slot = (long)cpu.ReadUInt64(bucket + 8) - 1;
        if (slot < 0 || slot >= _options.Keys)
        {
            Corrupt($"key {key} points at value slot {slot}, outside 0..{_options.Keys - 1}");
            return true;
        }
        cpu.Read(valuesBase + slot * _options.ValueBytes, value);
        Encode(key, version, expected);
        if (!value.SequenceEqual(expected))
        {
            Corrupt($"GET key {key} returned (key {BinaryPrimitives.ReadUInt64LittleEndian(value)}, version {BinaryPrimitives.ReadUInt64LittleEndian(value[8..])}), last SET stored version {version}");
        }
        return true;
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

    private long Sum(Func<Registers, long> counter)
    {
        long n = 0;
        for (int i = 0; i < Vcpus; i++)
            if (StateOf(i) is Registers r) n += counter(r);
        return n;
    }

    /// <summary>A shard's registers: per-key versions (the store's checker state), the next free value slot, the PRNG, the preload cursor and the counters.</summary>
    private sealed class Registers(int keys, bool preload, SplitMix64 rng) : VcpuState
    {
        public readonly ulong[] Versions = new ulong[keys];
        public long NextSlot;
        public int PreloadNext = preload ? 0 : keys;
        public SplitMix64 Rng = rng;
        public long Gets, Sets, Misses;

        public override void Save(BinaryWriter w)
        {
            w.Write(Versions.Length);
            // Versions are small counts: 7-bit varints keep a 64-vCPU store's state well under a gRPC message.
            foreach (ulong v in Versions) w.Write7BitEncodedInt64((long)v);
            w.Write(NextSlot);
            w.Write(PreloadNext);
            w.Write(Rng.State);
            w.Write(Gets);
            w.Write(Sets);
            w.Write(Misses);
        }

        public override void Load(BinaryReader r)
        {
            int keys = r.ReadInt32();
            if (keys != Versions.Length)
                throw new InvalidDataException($"kv vCPU state holds {keys} keys, this store has {Versions.Length} per vCPU (KeyValueStoreOptions.Keys).");
            for (int k = 0; k < keys; k++) Versions[k] = (ulong)r.Read7BitEncodedInt64();
            NextSlot = r.ReadInt64();
            PreloadNext = r.ReadInt32();
            Rng.State = r.ReadUInt64();
            Gets = r.ReadInt64();
            Sets = r.ReadInt64();
            Misses = r.ReadInt64();
            if (NextSlot < 0 || NextSlot > keys) throw new InvalidDataException($"kv vCPU state's next value slot {NextSlot} is outside 0..{keys}.");
            if (PreloadNext < 0 || PreloadNext > keys) throw new InvalidDataException($"kv vCPU state's preload cursor {PreloadNext} is outside 0..{keys}.");
            if (Gets < 0 || Sets < 0 || Misses < 0) throw new InvalidDataException("kv vCPU state has a negative GET, SET or miss counter.");
        }
    }

    private void Corrupt(string what)
    {
        Interlocked.Increment(ref _corrupt);
        Interlocked.CompareExchange(ref _firstCorruption, what, null);
    }

    private static long RoundToPage(long bytes) => (bytes + Page.Size - 1) & ~(long)(Page.Size - 1);
}
