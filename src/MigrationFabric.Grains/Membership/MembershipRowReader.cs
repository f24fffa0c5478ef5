using System.Data.Common;
using System.Globalization;

namespace MigrationFabric.Grains.Membership;

/// <summary>Reads the SQL stores' one-statement table read: <c>version, silo, status, start, alive, suspicions, name, etag</c>.</summary>
internal static class MembershipRowReader
{
    /// <summary>Row columns are null when the cluster has no rows (LEFT JOIN); no result at all means no version row.</summary>
    public static async Task<MembershipTableData> ReadAsync(DbDataReader reader, string clusterId, CancellationToken cancellationToken)
    {
        long? version = null;
        var rows = new List<MembershipRow>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            version = reader.GetInt64(0);
            if (reader.IsDBNull(1))
                continue;
            var entry = new MembershipEntry(
                ParseSilo(reader.GetString(1)),
                SuspicionCodec.Status(reader.GetInt64(2)),
                SuspicionCodec.Ticks(reader.GetInt64(3)),
                SuspicionCodec.Ticks(reader.GetInt64(4)),
                SuspicionCodec.Decode(reader.GetString(5)),
                reader.GetString(6));
            rows.Add(new MembershipRow(entry, reader.GetString(7)));
        }
        return version is long v ? new MembershipTableData(rows, Version(v)) : throw NotInitialized(clusterId);
    }

    private static SiloAddress ParseSilo(string text)
    {
        try
        {
            return SiloAddress.Parse(text);
        }
        catch (FormatException e)
        {
            throw new MembershipTableException($"Membership table holds a malformed silo address '{text}'.", e);
        }
    }

    public static TableVersion Version(long v) => new(v, v.ToString(CultureInfo.InvariantCulture));

    public static MembershipTableException NotInitialized(string clusterId, Exception? inner = null) =>
        new($"Membership table of cluster '{clusterId}' has no version row: call InitializeAsync first.", inner);
}
