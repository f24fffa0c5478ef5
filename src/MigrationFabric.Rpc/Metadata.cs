using System.Collections;

namespace MigrationFabric.Rpc;

/// <summary>gRPC custom metadata (headers or trailers): ordered key/value entries; keys ending in "-bin" carry bytes.</summary>
public sealed class Metadata : IReadOnlyList<Metadata.Entry>
{
    /// <summary>Suffix that marks a binary-valued key; such values travel base64-encoded.</summary>
    public const string BinarySuffix = "-bin";

    private readonly List<Entry> _entries = new();

    /// <inheritdoc />
    public int Count => _entries.Count;

    /// <inheritdoc />
    public Entry this[int index] => _entries[index];

    /// <summary>Adds an ASCII-valued entry; the key is lower-cased and validated.</summary>
    public Metadata Add(string key, string value)
    {
        _entries.Add(new Entry(key, value));
        return this;
    }

    /// <summary>Adds a binary-valued entry; the key must end in "-bin".</summary>
    public Metadata Add(string key, byte[] value)
    {
        _entries.Add(new Entry(key, value));
        return this;
    }

    /// <summary>Adds an entry created elsewhere.</summary>
    public Metadata Add(Entry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        _entries.Add(entry);
        return this;
    }

    /// <summary>The last string value for a key, or null.</summary>
    public string? GetValue(string key)
    {
        var entry = Get(key);
        return entry is null ? null : entry.IsBinary ? Convert.ToBase64String(entry.ValueBytes) : entry.Value;
    }

    /// <summary>The last binary value for a "-bin" key, or null.</summary>
    public byte[]? GetValueBytes(string key) => Get(key)?.ValueBytes;

    /// <summary>The last entry for a key (case-insensitive), or null.</summary>
    public Entry? Get(string key)
    {
        for (var i = _entries.Count - 1; i >= 0; i--)
        {
            if (string.Equals(_entries[i].Key, key, StringComparison.OrdinalIgnoreCase))
            {
                return _entries[i];
            }
        }

        return null;
    }

    /// <summary>Every entry for a key, in order.</summary>
    public IEnumerable<Entry> GetAll(string key)
    {
        foreach (var entry in _entries)
        {
            if (string.Equals(entry.Key, key, StringComparison.OrdinalIgnoreCase))
            {
                yield return entry;
            }
        }
    }

    /// <inheritdoc />
    public IEnumerator<Entry> GetEnumerator() => _entries.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>One metadata entry.</summary>
    public sealed class Entry
    {
        private readonly string? _value;
        private readonly byte[]? _bytes;

        /// <summary>An ASCII entry; a "-bin" key takes the value as base64 text.</summary>
        public Entry(string key, string value)
        {
            Key = NormalizeKey(key);
            ArgumentNullException.ThrowIfNull(value);
            if (Key.EndsWith(BinarySuffix, StringComparison.Ordinal))
            {
                _bytes = DecodeBase64(Key, value);
                return;
            }

            foreach (var c in value)
            {
                if (c < 0x20 || c > 0x7E)
                {
                    throw new ArgumentException($"Metadata value for '{Key}' contains the character U+{(int)c:X4}; only printable ASCII is allowed (use a '-bin' key for bytes).", nameof(value));
                }
            }

            _value = value;
        }

        /// <summary>A binary entry; the key must end in "-bin".</summary>
        public Entry(string key, byte[] value)
        {
            Key = NormalizeKey(key);
            ArgumentNullException.ThrowIfNull(value);
            if (!Key.EndsWith(BinarySuffix, StringComparison.Ordinal))
            {
                throw new ArgumentException($"Metadata key '{Key}' carries bytes, so it must end in '{BinarySuffix}'.", nameof(key));
            }

            _bytes = value;
        }

        /// <summary>The lower-case key.</summary>
        public string Key { get; }

        /// <summary>True when the key ends in "-bin".</summary>
        public bool IsBinary => _bytes is not null;

        /// <summary>The ASCII value; for a binary entry, its base64 text.</summary>
        public string Value => _value ?? Convert.ToBase64String(_bytes!);

        /// <summary>The binary value; for an ASCII entry, its ASCII bytes.</summary>
        public byte[] ValueBytes => _bytes ?? System.Text.Encoding.ASCII.GetBytes(_value!);

        /// <inheritdoc />
        public override string ToString() => $"{Key}={Value}";

        internal static byte[] DecodeBase64(string key, string text)
        {
            // gRPC peers may send base64 with or without padding; accept both.
            var trimmed = text.Trim();
            var padded = (trimmed.Length % 4) switch
            {
                2 => trimmed + "==",
                3 => trimmed + "=",
                _ => trimmed,
            };
            try
            {
                return Convert.FromBase64String(padded);
            }
            catch (FormatException e)
            {
                throw new ArgumentException($"Metadata value for binary key '{key}' is not valid base64.", nameof(text), e);
            }
        }

        private static string NormalizeKey(string key)
        {
            ArgumentException.ThrowIfNullOrEmpty(key);
            var lower = key.ToLowerInvariant();
            foreach (var c in lower)
            {
                if (!(c is >= 'a' and <= 'z' or >= '0' and <= '9' or '-' or '_' or '.'))
                {
                    throw new ArgumentException($"Metadata key '{key}' contains '{c}'; allowed are a-z, 0-9, '-', '_' and '.'.", nameof(key));
                }
            }

            if (lower.StartsWith("grpc-", StringComparison.Ordinal))
            {
                throw new ArgumentException($"Metadata key '{key}' is reserved: 'grpc-' keys belong to the protocol.", nameof(key));
            }

            return lower;
        }
    }
}
