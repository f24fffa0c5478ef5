namespace MigrationFabric.Memory.Swap;

/// <summary>Hands out and takes back fixed-size runs of swap slots (a free stack, lowest run first).</summary>
/// <remarks>
/// A run is a chunk's worth of consecutive slots, so a chunk's pages sit next to each other in the
/// file and a whole chunk moves in one positional read or write. Thread-safe.
/// </remarks>
public sealed class SwapSlotAllocator
{
    private readonly int[] _free;
    private readonly bool[] _inUse;
    private readonly Lock _gate = new();
    private int _freeCount;

    /// <summary>Creates an allocator of <paramref name="runCount"/> runs of <paramref name="slotsPerRun"/> slots, all free.</summary>
    public SwapSlotAllocator(int runCount, int slotsPerRun)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(runCount);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(slotsPerRun);
        RunCount = runCount;
        SlotsPerRun = slotsPerRun;
        _free = new int[runCount];
        _inUse = new bool[runCount];
        for (var i = 0; i < runCount; i++)
            _free[i] = runCount - 1 - i;
        _freeCount = runCount;
    }

    /// <summary>Runs managed.</summary>
    public int RunCount { get; }

    /// <summary>Slots in each run.</summary>
    public int SlotsPerRun { get; }

    /// <summary>Runs currently free.</summary>
    public int FreeRuns
    {
        get
        {
            lock (_gate) return _freeCount;
        }
    }

    /// <summary>Takes a free run; false when the swap file is full.</summary>
    public bool TryAllocate(out int run)
    {
        lock (_gate)
        {
            if (_freeCount == 0)
            {
                run = -1;
                return false;
            }
            run = _free[--_freeCount];
            _inUse[run] = true;
            return true;
        }
    }

    /// <summary>The first slot of <paramref name="run"/>.</summary>
    public int FirstSlot(int run) => run * SlotsPerRun;

    /// <summary>Gives a run back; throws on a run that is not allocated (a double free would hand one slot to two pages).</summary>
    public void Free(int run)
    {
        lock (_gate)
        {
            if ((uint)run >= (uint)RunCount)
                throw new ArgumentOutOfRangeException(nameof(run), run, $"Swap run must be in 0..{RunCount - 1}.");
            if (!_inUse[run])
                throw new InvalidOperationException($"Swap run {run} is not allocated; freeing it twice would corrupt the swap file.");
            _inUse[run] = false;
            _free[_freeCount++] = run;
        }
    }
}
