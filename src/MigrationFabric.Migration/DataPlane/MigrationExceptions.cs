namespace MigrationFabric.Migration.DataPlane;

/// <summary>A migration failed before switch-over; the VM still runs at the source, untouched, and the destination's copy is discarded.</summary>
public class MigrationFailedException(string migrationId, string phase, string message, Exception? inner = null)
    : Exception($"migration {migrationId} failed in {phase}: {message} The VM keeps running at the source; the destination's copy is discarded.", inner)
{
    /// <summary>The migration.</summary>
    public string MigrationId { get; } = migrationId;

    /// <summary>The phase it failed in.</summary>
    public string Phase { get; } = phase;
}

/// <summary>A pre-copy did not converge before its deadline (the source VM keeps running untouched).</summary>
public sealed class MigrationDeadlineExceededException(string migrationId, string phase, TimeSpan deadline, string detail)
    : MigrationFailedException(migrationId, phase, $"the deadline of {deadline.TotalSeconds:0.###} s passed ({detail}).")
{
    /// <summary>The deadline that passed.</summary>
    public TimeSpan Deadline { get; } = deadline;
}

/// <summary>The destination's memory differs from the source's at switch-over: the migration's result must not be trusted.</summary>
public sealed class MigrationIntegrityException(string migrationId, long mismatchedCount, IReadOnlyList<long> mismatchedPages)
    : Exception($"migration {migrationId}: integrity check FAILED: {mismatchedCount} page(s) at the destination differ from the source at switch-over (first: {string.Join(", ", mismatchedPages.Take(16))}).")
{
    /// <summary>The migration.</summary>
    public string MigrationId { get; } = migrationId;

    /// <summary>How many pages differ.</summary>
    public long MismatchedCount { get; } = mismatchedCount;

    /// <summary>Some of the pages that differ (up to 1000 per verified chunk).</summary>
    public IReadOnlyList<long> MismatchedPages { get; } = mismatchedPages;
}

/// <summary>The source was lost during post-copy while it still held pages the VM had not received: those pages, and so the VM, are lost (a known limit of post-copy).</summary>
public sealed class MigrationSourceLostException(string migrationId, long pagesLost, Exception? inner)
    : Exception($"migration {migrationId}: the source was lost during post-copy with {pagesLost} page(s) not yet at the destination; those pages exist nowhere else, so the VM cannot continue (known post-copy loss).", inner)
{
    /// <summary>The migration.</summary>
    public string MigrationId { get; } = migrationId;

    /// <summary>Pages that were only at the source.</summary>
    public long PagesLost { get; } = pagesLost;
}

/// <summary>The source abandoned the migration (cancelled or failed before switch-over); the destination's copy was discarded.</summary>
public sealed class MigrationAbortedException(string migrationId, string reason)
    : Exception($"migration {migrationId} was aborted before switch-over ({reason}); the destination's copy was discarded.")
{
    /// <summary>The migration.</summary>
    public string MigrationId { get; } = migrationId;
}
