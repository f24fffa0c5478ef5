namespace MigrationFabric.Memory.Tracking;

/// <summary>Receives page numbers from a bitmap scan; implement as a struct so the scan inlines it and allocates nothing.</summary>
public interface IPageVisitor
{
    /// <summary>Called once per set bit, in ascending page order.</summary>
    void Visit(long page);
}
