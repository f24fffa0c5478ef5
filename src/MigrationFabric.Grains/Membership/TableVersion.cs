namespace MigrationFabric.Grains.Membership;

/// <summary>The membership table's version row: every successful insert or update moves it by one.</summary>
/// <param name="Version">Monotonic version number; 0 for a fresh table.</param>
/// <param name="Etag">The store's concurrency token for the version row.</param>
public sealed record TableVersion(long Version, string Etag)
{
    /// <summary>The version the next successful write will carry.</summary>
    public TableVersion Next() => new(Version + 1, Etag);
}
