using System.Runtime.CompilerServices;

namespace MigrationFabric.Memory.Tracking;

/// <summary>KVM-style dirty log: a bit per page set by vCPU writes, harvested with fetch-and-clear per pre-copy round.</summary>
public sealed class DirtyBitmap : AtomicPageBitmap
{
    private long _newlyDirtied;

    /// <summary>Creates a clean dirty log for <paramref name="pageCount"/> pages.</summary>
    public DirtyBitmap(long pageCount) : base(pageCount) { }

    /// <summary>Clear-to-set transitions since creation: the raw count a dirty rate is derived from.</summary>
    public long NewlyDirtiedTotal => Volatile.Read(ref _newlyDirtied);

    /// <summary>Marks a page written; counts it if it was clean.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void MarkDirty(long page)
    {
        if (Set(page)) Interlocked.Increment(ref _newlyDirtied);
    }
}

/// <summary>Accessed bits (read or write) per page, sampled with test-and-clear to estimate the working set.</summary>
public sealed class AccessBitmap : AtomicPageBitmap
{
    /// <summary>Creates an all-clear access bitmap for <paramref name="pageCount"/> pages.</summary>
    public AccessBitmap(long pageCount) : base(pageCount) { }

    /// <summary>Marks a page accessed.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void MarkAccessed(long page) => Set(page);
}
