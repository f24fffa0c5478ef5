using System.Collections.Concurrent;
using System.Security.Cryptography;
using MigrationFabric.Contracts.V1;

namespace MigrationFabric.Migration.DataPlane.Tcp;

/// <summary>Single-use random tokens of one listener: issued by OpenDataChannel, taken once by the connection that presents them.</summary>
internal sealed class DataChannelTokens(TimeProvider time, TimeSpan lifetime)
{
    public const int Size = 16;
    private readonly ConcurrentDictionary<UInt128, DataChannelGrant> _grants = new();

    public byte[] Issue(string migrationId, uint streamIndex, DataChannelPurpose purpose)
    {
        var now = time.GetUtcNow();
        // Unused tokens of migrations that never connected are dropped here rather than by a timer.
        foreach (var (key, grant) in _grants)
            if (grant.ExpiresAt <= now) _grants.TryRemove(key, out _);
        var token = new byte[Size];
        while (true)
        {
            RandomNumberGenerator.Fill(token);
            if (_grants.TryAdd(Key(token), new DataChannelGrant(migrationId, streamIndex, purpose, now + lifetime))) return token;
        }
    }

    /// <summary>The grant of <paramref name="token"/>, removed so that it cannot be used again; null when unknown, used or expired.</summary>
    public DataChannelGrant? Take(ReadOnlySpan<byte> token)
    {
        if (token.Length != Size || !_grants.TryRemove(Key(token), out var grant)) return null;
        return grant.ExpiresAt > time.GetUtcNow() ? grant : null;
    }

    public int Outstanding => _grants.Count;

    private static UInt128 Key(ReadOnlySpan<byte> token) => System.Buffers.Binary.BinaryPrimitives.ReadUInt128LittleEndian(token);
}
