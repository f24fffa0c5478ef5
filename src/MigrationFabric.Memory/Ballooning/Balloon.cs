using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Pages;

namespace MigrationFabric.Memory.Ballooning;

/// <summary>A VM's memory balloon: inflating takes free guest pages out of the footprint (RAM returned, nothing to migrate); deflating gives them back at once.</summary>
/// <remarks>
/// Only pages the guest reports free are taken, so inflating never loses data: explicitly freed pages
/// first (they hold RAM now), then never-touched pages from the top of memory down (workloads allocate
/// from the bottom). Deflating is a state change only: a Ballooned page holds no RAM and comes back as
/// a Zero page. A vCPU touching a Ballooned page deflates it on demand in the MMU, so a memory spike
/// never waits for the balloon.
/// </remarks>
public sealed class Balloon
{
    private readonly GuestMemory _memory;
    private readonly FreePageReport _free;
    private readonly long _maxPages;
    private readonly Lock _lock = new();

    /// <summary>Creates the balloon of <paramref name="memory"/>, empty.</summary>
    public Balloon(GuestMemory memory, FreePageReport freePages, BalloonOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(memory);
        ArgumentNullException.ThrowIfNull(freePages);
        options ??= new BalloonOptions();
        options.Validate();
        _memory = memory;
        _free = freePages;
        _maxPages = (long)(memory.PageCount * options.MaxFraction);
    }

    /// <summary>Pages in the balloon now (deflations on touch included).</summary>
    public long SizePages => _memory.CountOf(PageResidency.Ballooned);

    /// <summary>Largest balloon allowed (BalloonOptions.MaxFraction of the VM).</summary>
    public long MaxPages => _maxPages;

    /// <summary>Inflates until the balloon holds <paramref name="targetPages"/> or the guest has no more free pages.</summary>
    /// <returns>Pages taken by this call (less than asked when free pages ran out).</returns>
    public long InflateTo(long targetPages)
    {
        CheckTarget(targetPages);
        lock (_lock)
        {
            long want = targetPages - SizePages;
            if (want <= 0) return 0;
            long taken = 0;
            // Freed pages first: they hold RAM that inflating gives back.
            for (long p = 0; p < _memory.PageCount && taken < want; p++)
            {
                if (!_free.IsExplicitlyFreed(p)) continue;
                var r = _memory.GetResidency(p);
                if (r == PageResidency.Resident ? _memory.TryDiscard(p, PageResidency.Ballooned)
                    : r == PageResidency.Zero && _memory.TryTransition(p, PageResidency.Zero, PageResidency.Ballooned))
                {
                    _free.TakeIfFreed(p);
                    taken++;
                }
            }
            for (long p = _memory.PageCount - 1; p >= 0 && taken < want; p--)
                if (_memory.TryTransition(p, PageResidency.Zero, PageResidency.Ballooned)) taken++;
            return taken;
        }
    }

    /// <summary>Deflates until the balloon holds at most <paramref name="targetPages"/>; pages come back as Zero pages (no copy, no syscall).</summary>
    /// <returns>Pages given back by this call.</returns>
    public long DeflateTo(long targetPages)
    {
        CheckTarget(targetPages);
        lock (_lock)
        {
            long give = SizePages - targetPages;
            long given = 0;
            // Lowest pages first: where workloads grow.
            for (long p = 0; p < _memory.PageCount && given < give; p++)
                if (_memory.TryTransition(p, PageResidency.Ballooned, PageResidency.Zero)) given++;
            return given;
        }
    }

    /// <summary>Gives <paramref name="pages"/> back at once (a spike); returns how many were given.</summary>
    public long Deflate(long pages)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(pages);
        return DeflateTo(Math.Max(0, SizePages - pages));
    }

    private void CheckTarget(long targetPages)
    {
        if (targetPages < 0 || targetPages > _maxPages)
            throw new ArgumentOutOfRangeException(nameof(targetPages), targetPages,
                $"balloon target must be within 0..{_maxPages} pages (BalloonOptions.MaxFraction of {_memory.PageCount}).");
    }
}
