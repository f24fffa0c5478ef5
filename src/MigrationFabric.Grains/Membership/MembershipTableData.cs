namespace MigrationFabric.Grains.Membership;

/// <summary>A row of the table together with its concurrency token.</summary>
public sealed record MembershipRow(MembershipEntry Entry, string Etag);

/// <summary>A consistent read of the whole membership table: all rows and the table version.</summary>
public sealed record MembershipTableData(IReadOnlyList<MembershipRow> Rows, TableVersion Version)
{
    /// <summary>The row of <paramref name="silo"/>, or null.</summary>
    public MembershipRow? Find(SiloAddress silo)
    {
        foreach (var row in Rows)
            if (row.Entry.Silo.Equals(silo))
                return row;
        return null;
    }
}
