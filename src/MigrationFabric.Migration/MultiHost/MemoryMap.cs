using System.Buffers.Binary;
using System.Text;
using MigrationFabric.Memory.Integrity;

namespace MigrationFabric.Migration.MultiHost;

/// <summary>Which host holds each page of a split VM: the main host (index 0) or one of its sub-hosts (index 1..N); versioned, and serializable in a compact form.</summary>
/// <remarks>
/// Kept by the main host's <see cref="RemotePaging.RemotePager"/>, which moves pages in it as they page in and out; the
/// source hands the first one to the main at switch-over. <see cref="Serialize"/> writes runs of one owner
/// (4 GiB split into 1 MiB chunks: a few KiB), or a packed owner array when that is smaller, followed by an XXH64 of
/// everything before it. Thread-safe: changes and snapshots are serialized by a lock.
/// </remarks>
public sealed class MemoryMap
{
    /// <summary>The owner index of the main host.</summary>
    public const int Main = 0;

    /// <summary>At most this many sub-hosts (an owner is one byte).</summary>
    public const int MaxSubHosts = 254;

    /// <summary>The serialized format's version (written first after the magic; <see cref="Deserialize"/> refuses others).</summary>
    public const byte FormatVersion = 1;

    private static ReadOnlySpan<byte> Magic => "MFMM"u8;
    private const byte RunsEncoding = 0, PackedEncoding = 1;

    private readonly byte[] _owner;
    private readonly long[] _counts;
    private readonly Lock _lock = new();
    private long _version;

    /// <summary>A map of <paramref name="pageCount"/> pages, all on the main host, with sub-hosts <paramref name="subHosts"/> (owner 1 is the first).</summary>
    /// <exception cref="ArgumentException">No page, no or too many sub-hosts, a relative or repeated address.</exception>
    public MemoryMap(long pageCount, IReadOnlyList<Uri> subHosts)
    {
        if (pageCount is <= 0 or > int.MaxValue) throw new ArgumentOutOfRangeException(nameof(pageCount), pageCount, "a memory map covers 1..2^31-1 pages.");
        CheckSubHosts(subHosts, nameof(subHosts));
        SubHosts = [.. subHosts];
        _owner = new byte[pageCount];
        _counts = new long[subHosts.Count + 1];
        _counts[Main] = pageCount;
    }

    /// <summary>Pages in the VM.</summary>
    public long PageCount => _owner.Length;

    /// <summary>The sub-hosts' data-plane addresses; owner k is SubHosts[k - 1].</summary>
    public IReadOnlyList<Uri> SubHosts { get; }

    /// <summary>Bumped by every change batch (<see cref="Move(ReadOnlySpan{long}, int)"/>, <see cref="Assign"/>); a later export has a higher version.</summary>
    public long Version
    {
        get { lock (_lock) return _version; }
    }

    /// <summary>The owner of page <paramref name="page"/>: <see cref="Main"/> or a sub-host's index (1-based).</summary>
    public int HostOf(long page) => Volatile.Read(ref _owner[page]);

    /// <summary>Pages the map gives to host <paramref name="host"/> (0 = main).</summary>
    public long PagesOn(int host)
    {
        lock (_lock) return _counts[host];
    }

    /// <summary>Gives pages <paramref name="pages"/> to host <paramref name="host"/> in one change (one version).</summary>
    public void Move(ReadOnlySpan<long> pages, int host)
    {
        CheckHost(host);
        lock (_lock)
        {
            foreach (long p in pages) SetLocked(p, (byte)host);
            _version++;
        }
    }

    /// <summary>Gives page <paramref name="page"/> to host <paramref name="host"/> (one change).</summary>
    public void Move(long page, int host) => Move([page], host);

    /// <summary>Gives page <paramref name="page"/> to <paramref name="host"/> as part of building a map (no version bump; see <see cref="Move(ReadOnlySpan{long}, int)"/>).</summary>
    public void Assign(long page, int host)
    {
        CheckHost(host);
        lock (_lock) SetLocked(page, (byte)host);
    }

    private void SetLocked(long page, byte host)
    {
        if ((ulong)page >= (ulong)_owner.Length) throw new ArgumentOutOfRangeException(nameof(page), page, $"the map covers {_owner.Length} pages.");
        byte old = _owner[page];
        if (old == host) return;
        _counts[old]--;
        _counts[host]++;
        Volatile.Write(ref _owner[page], host);
    }

    private void CheckHost(int host)
    {
        if ((uint)host > (uint)SubHosts.Count) throw new ArgumentOutOfRangeException(nameof(host), host, $"owners are 0 (main) .. {SubHosts.Count} (sub-hosts).");
    }

    /// <summary>A consistent snapshot of the map in its compact form (see the remarks on the type).</summary>
    public byte[] Serialize()
    {
        lock (_lock)
        {
            var header = new List<byte>(64);
            header.AddRange(Magic);
            header.Add(FormatVersion);
            var body = new List<byte>(256);
            long runs = 0;
            for (long p = 0; p < _owner.Length; runs++)
            {
                long start = p;
                byte o = _owner[p];
                while (p < _owner.Length && _owner[p] == o) p++;
                body.Add(o);
                WriteVarint(body, (ulong)(p - start));
            }
            int bits = BitsPerOwner(SubHosts.Count);
            long packedBytes = (_owner.LongLength * bits + 7) / 8;
            bool packed = body.Count > packedBytes + 1;
            header.Add(packed ? PackedEncoding : RunsEncoding);
            WriteVarint(header, (ulong)_owner.Length);
            WriteVarint(header, (ulong)_version);
            WriteVarint(header, (ulong)SubHosts.Count);
            foreach (var h in SubHosts)
            {
                var utf8 = Encoding.UTF8.GetBytes(h.OriginalString);
                WriteVarint(header, (ulong)utf8.Length);
                header.AddRange(utf8);
            }
            if (packed)
            {
                body.Clear();
                body.Add((byte)bits);
                var bytes = new byte[packedBytes];
                for (long p = 0; p < _owner.Length; p++)
                {
                    long bit = p * bits;
                    bytes[bit >> 3] |= (byte)(_owner[p] << (int)(bit & 7));
                }
                body.AddRange(bytes);
            }
            var result = new byte[header.Count + body.Count + 8];
            header.CopyTo(result);
            body.CopyTo(result, header.Count);
            BinaryPrimitives.WriteUInt64LittleEndian(result.AsSpan(result.Length - 8), Xxh64.Hash(result.AsSpan(0, result.Length - 8)));
            return result;
        }
    }

    /// <summary>Reads a map written by <see cref="Serialize"/>.</summary>
    /// <exception cref="InvalidDataException">The bytes are not a memory map of this format, are truncated or corrupt (the message says what).</exception>
    public static MemoryMap Deserialize(ReadOnlySpan<byte> data)
    {
        if (data.Length < Magic.Length + 2 + 8 || !data[..Magic.Length].SequenceEqual(Magic)) throw new InvalidDataException("not a memory map (no MFMM header).");
        if (data[4] != FormatVersion) throw new InvalidDataException($"memory map format version {data[4]} is not supported (this build reads {FormatVersion}).");
        ulong stored = BinaryPrimitives.ReadUInt64LittleEndian(data[^8..]);
        if (Xxh64.Hash(data[..^8]) != stored) throw new InvalidDataException("memory map checksum mismatch: the map is corrupt or truncated.");
        byte encoding = data[5];
        int at = 6;
        var payload = data[..^8];
        long pageCount = (long)ReadVarint(payload, ref at, "page count");
        long version = (long)ReadVarint(payload, ref at, "version");
        long hostCount = (long)ReadVarint(payload, ref at, "sub-host count");
        if (hostCount is < 1 or > MaxSubHosts) throw new InvalidDataException($"memory map names {hostCount} sub-hosts (1..{MaxSubHosts} allowed).");
        if (pageCount is <= 0 or > int.MaxValue) throw new InvalidDataException($"memory map page count {pageCount} is out of range.");
        var hosts = new Uri[hostCount];
        for (int i = 0; i < hostCount; i++)
        {
            long len = (long)ReadVarint(payload, ref at, "sub-host address length");
            if (len <= 0 || at + len > payload.Length) throw new InvalidDataException($"memory map sub-host {i + 1}'s address is truncated.");
            string s = Encoding.UTF8.GetString(payload.Slice(at, (int)len));
            at += (int)len;
            if (!Uri.TryCreate(s, UriKind.Absolute, out var uri)) throw new InvalidDataException($"memory map sub-host {i + 1}'s address '{s}' is not absolute.");
            hosts[i] = uri;
        }
        MemoryMap map;
        try { map = new MemoryMap(pageCount, hosts); }
        catch (ArgumentException e) { throw new InvalidDataException($"memory map is invalid: {e.Message}", e); }
        var owner = map._owner;
        var counts = map._counts;
        counts[Main] = 0;
        if (encoding == RunsEncoding)
        {
            long p = 0;
            while (p < pageCount)
            {
                if (at >= payload.Length) throw new InvalidDataException($"memory map runs end at page {p} of {pageCount}.");
                byte o = payload[at++];
                if (o > hostCount) throw new InvalidDataException($"memory map gives page {p} to host {o}; it names {hostCount} sub-hosts.");
                long run = (long)ReadVarint(payload, ref at, "run length");
                if (run <= 0 || p + run > pageCount) throw new InvalidDataException($"memory map run of {run} pages at page {p} does not fit {pageCount} pages.");
                owner.AsSpan((int)p, (int)run).Fill(o);
                counts[o] += run;
                p += run;
            }
        }
        else if (encoding == PackedEncoding)
        {
            if (at >= payload.Length) throw new InvalidDataException("memory map packed body is missing.");
            int bits = payload[at++];
            if (bits != BitsPerOwner((int)hostCount)) throw new InvalidDataException($"memory map packs {bits} bits per page; {hostCount} sub-hosts need {BitsPerOwner((int)hostCount)}.");
            long bytes = (pageCount * bits + 7) / 8;
            if (payload.Length - at != bytes) throw new InvalidDataException($"memory map packed body is {payload.Length - at} bytes, {bytes} expected.");
            var body = payload[at..];
            int mask = (1 << bits) - 1;
            for (long p = 0; p < pageCount; p++)
            {
                long bit = p * bits;
                int o = (body[(int)(bit >> 3)] >> (int)(bit & 7)) & mask;
                if (o > hostCount) throw new InvalidDataException($"memory map gives page {p} to host {o}; it names {hostCount} sub-hosts.");
                owner[p] = (byte)o;
                counts[o]++;
            }
            at = payload.Length;
        }
        else throw new InvalidDataException($"memory map encoding {encoding} is unknown.");
        if (at != payload.Length) throw new InvalidDataException($"memory map has {payload.Length - at} bytes after its last page.");
        map._version = version;
        return map;
    }

    /// <summary>Throws naming the problem unless <paramref name="subHosts"/> is 1..<see cref="MaxSubHosts"/> distinct absolute addresses.</summary>
    internal static void CheckSubHosts(IReadOnlyList<Uri>? subHosts, string name)
    {
        if (subHosts is null || subHosts.Count == 0) throw new ArgumentException($"{name} must name at least one sub-host.");
        if (subHosts.Count > MaxSubHosts) throw new ArgumentException($"{name} names {subHosts.Count} sub-hosts; at most {MaxSubHosts} are supported.");
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        for (int i = 0; i < subHosts.Count; i++)
        {
            var h = subHosts[i];
            if (h is null || !h.IsAbsoluteUri) throw new ArgumentException($"{name}[{i}] must be a sub-host's absolute address, was '{h}'.");
            if (!seen.Add(h.Authority)) throw new ArgumentException($"{name}[{i}] ({h}) repeats a sub-host: each must be a different host.");
        }
    }

    private static int BitsPerOwner(int subHosts) => subHosts switch { 1 => 1, <= 3 => 2, <= 15 => 4, _ => 8 };

    private static void WriteVarint(List<byte> to, ulong v)
    {
        while (v >= 0x80)
        {
            to.Add((byte)(v | 0x80));
            v >>= 7;
        }
        to.Add((byte)v);
    }

    private static ulong ReadVarint(ReadOnlySpan<byte> from, ref int at, string what)
    {
        ulong v = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (at >= from.Length) throw new InvalidDataException($"memory map is truncated in its {what}.");
            byte b = from[at++];
            v |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return v;
        }
        throw new InvalidDataException($"memory map's {what} is not a valid varint.");
    }
}
