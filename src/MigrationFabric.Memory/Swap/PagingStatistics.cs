using MigrationFabric.Memory.Metrics;
using MigrationFabric.Memory.Pages;

namespace MigrationFabric.Memory.Swap;

/// <summary>Counters of a private virtual memory's paging and direct placement, updated atomically.</summary>
public sealed class PagingStatistics
{
    private long _pageInsSync, _pageInsAsync, _pageOutsSync, _pageOutsAsync, _faults;
    // Moved on every placed or read-through page by several streams at once: striped, not shared.
    private const int PlacedInMemory = 0, PlacedInSwap = 1, UpdatedInMemory = 2, UpdatedInSwap = 3, PlaceTicks = 4, ReadFromMemory = 5, ReadFromSwap = 6;
    private readonly StripedCounters _perPage = new(7);
    private long _pageInIoTicks, _pageOutIoTicks, _faultTicks;
    private long _placementWritePages, _placementWriteTicks, _streamStageFlushes, _placementRingPages;

    internal void PagedIn(long pages, bool sync) => Interlocked.Add(ref sync ? ref _pageInsSync : ref _pageInsAsync, pages);

    internal void PagedOut(long pages, bool sync) => Interlocked.Add(ref sync ? ref _pageOutsSync : ref _pageOutsAsync, pages);

    internal void Fault() => Interlocked.Increment(ref _faults);

    internal void PageInIo(long startTimestamp) => Interlocked.Add(ref _pageInIoTicks, System.Diagnostics.Stopwatch.GetTimestamp() - startTimestamp);

    internal void PageOutIo(long startTimestamp) => Interlocked.Add(ref _pageOutIoTicks, System.Diagnostics.Stopwatch.GetTimestamp() - startTimestamp);

    internal void FaultResolved(long startTimestamp) => Interlocked.Add(ref _faultTicks, System.Diagnostics.Stopwatch.GetTimestamp() - startTimestamp);

    internal void Placed(PlacementTarget target, bool update)
    {
        _perPage.Increment(target == PlacementTarget.Memory ? update ? UpdatedInMemory : PlacedInMemory : update ? UpdatedInSwap : PlacedInSwap);
    }

    internal void PlacementWritten(long pages, long startTimestamp)
    {
        Interlocked.Add(ref _placementWritePages, pages);
        Interlocked.Add(ref _placementWriteTicks, System.Diagnostics.Stopwatch.GetTimestamp() - startTimestamp);
    }

    internal void StreamStageFlush() => Interlocked.Increment(ref _streamStageFlushes);

    internal void PlacementRingWritten(long pages) => Interlocked.Add(ref _placementRingPages, pages);

    internal void PlaceTime(long startTimestamp) => _perPage.Add(PlaceTicks, System.Diagnostics.Stopwatch.GetTimestamp() - startTimestamp);

    internal void ReadThrough(bool fromSwap) => _perPage.Increment(fromSwap ? ReadFromSwap : ReadFromMemory);

    /// <summary>A consistent-enough copy of the counters (each read atomically).</summary>
    public PagingSnapshot Snapshot() => new(
        Volatile.Read(ref _pageInsSync), Volatile.Read(ref _pageInsAsync),
        Volatile.Read(ref _pageOutsSync), Volatile.Read(ref _pageOutsAsync),
        Volatile.Read(ref _faults),
        _perPage.Read(PlacedInMemory), _perPage.Read(PlacedInSwap),
        _perPage.Read(UpdatedInMemory), _perPage.Read(UpdatedInSwap),
        _perPage.Read(ReadFromMemory), _perPage.Read(ReadFromSwap),
        Ticks(ref _pageInIoTicks), Ticks(ref _pageOutIoTicks), Ticks(ref _faultTicks),
        Volatile.Read(ref _placementWritePages), Ticks(ref _placementWriteTicks), TimeSpanOf(_perPage.Read(PlaceTicks)), Volatile.Read(ref _streamStageFlushes),
        Volatile.Read(ref _placementRingPages));

    private static TimeSpan Ticks(ref long stopwatchTicks) => TimeSpanOf(Volatile.Read(ref stopwatchTicks));

    private static TimeSpan TimeSpanOf(long stopwatchTicks) => TimeSpan.FromSeconds((double)stopwatchTicks / System.Diagnostics.Stopwatch.Frequency);
}

/// <summary>Paging counters at one moment; page counts, bytes derived at 4 KiB a page.</summary>
/// <param name="PageInsSync">Pages read from swap on a faulting vCPU's thread.</param>
/// <param name="PageInsAsync">Pages read from swap by the page-in thread (method 2's rest of chunk).</param>
/// <param name="PageOutsSync">Pages written to swap while something waited for the room (naive, or a fault that found no free share).</param>
/// <param name="PageOutsAsync">Pages written to swap by the page-out thread.</param>
/// <param name="Faults">Faults on swapped pages resolved.</param>
/// <param name="PlacedInMemory">Pages placed directly into memory the first time.</param>
/// <param name="PlacedInSwap">Pages placed directly into their swap slot the first time.</param>
/// <param name="UpdatedInMemory">Retransferred pages updated in place in memory.</param>
/// <param name="UpdatedInSwap">Retransferred pages updated in place in swap.</param>
/// <param name="ReadFromMemory">Read-through reads served from memory.</param>
/// <param name="ReadFromSwap">Read-through reads served from swap without a page-in.</param>
/// <param name="PageInIo">Time spent in swap reads of page-ins, summed over threads (PageInBytes / PageInIo is the read rate the device gave).</param>
/// <param name="PageOutIo">Time spent in swap writes of page-outs, summed over threads.</param>
/// <param name="FaultTime">Time vCPUs spent resolving faults on swapped pages (page-ins and any synchronous page-outs they waited for).</param>
/// <param name="PlacementWrites">Pages direct placement wrote to swap (staged runs and single pages), first copies and retransfers.</param>
/// <param name="PlacementWriteIo">Time spent in those writes, summed over the placing threads.</param>
/// <param name="PlaceTime">Time spent inside direct placement (copies, locks, writes, and naive's paging), summed over the placing threads.</param>
/// <param name="StreamStageFlushes">Staged chunks a placing stream wrote itself because every staging buffer was taken (it waited for the disk meanwhile).</param>
/// <param name="PlacementRingWrites">Of <paramref name="PlacementWrites"/>, pages a placement writer wrote through its io_uring from a registered staging buffer.</param>
public readonly record struct PagingSnapshot(
    long PageInsSync, long PageInsAsync, long PageOutsSync, long PageOutsAsync, long Faults,
    long PlacedInMemory, long PlacedInSwap, long UpdatedInMemory, long UpdatedInSwap,
    long ReadFromMemory, long ReadFromSwap,
    TimeSpan PageInIo = default, TimeSpan PageOutIo = default, TimeSpan FaultTime = default,
    long PlacementWrites = 0, TimeSpan PlacementWriteIo = default, TimeSpan PlaceTime = default, long StreamStageFlushes = 0,
    long PlacementRingWrites = 0)
{
    /// <summary>The counters gathered since <paramref name="earlier"/> (a snapshot of the same statistics taken before).</summary>
    public PagingSnapshot Since(PagingSnapshot earlier) => new(
        PageInsSync - earlier.PageInsSync, PageInsAsync - earlier.PageInsAsync, PageOutsSync - earlier.PageOutsSync,
        PageOutsAsync - earlier.PageOutsAsync, Faults - earlier.Faults, PlacedInMemory - earlier.PlacedInMemory,
        PlacedInSwap - earlier.PlacedInSwap, UpdatedInMemory - earlier.UpdatedInMemory, UpdatedInSwap - earlier.UpdatedInSwap,
        ReadFromMemory - earlier.ReadFromMemory, ReadFromSwap - earlier.ReadFromSwap,
        PageInIo - earlier.PageInIo, PageOutIo - earlier.PageOutIo, FaultTime - earlier.FaultTime,
        PlacementWrites - earlier.PlacementWrites, PlacementWriteIo - earlier.PlacementWriteIo, PlaceTime - earlier.PlaceTime,
        StreamStageFlushes - earlier.StreamStageFlushes, PlacementRingWrites - earlier.PlacementRingWrites);

    /// <summary>All pages read from swap.</summary>
    public long PageIns => PageInsSync + PageInsAsync;

    /// <summary>All pages written to swap by paging (placement not included).</summary>
    public long PageOuts => PageOutsSync + PageOutsAsync;

    /// <summary>Bytes paged in.</summary>
    public long PageInBytes => PageIns * Page.Size;

    /// <summary>Bytes paged out.</summary>
    public long PageOutBytes => PageOuts * Page.Size;
}

/// <summary>Where a directly placed page went.</summary>
public enum PlacementTarget
{
    /// <summary>Into the VM's physical share.</summary>
    Memory,

    /// <summary>Into the page's private swap slot.</summary>
    Swap,
}
