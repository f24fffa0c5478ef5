namespace MigrationFabric.Memory.Swap;

/// <summary>How a private virtual memory pages: the VMemDirect asynchronous methods or plain OS-like swap.</summary>
public enum PagingMode
{
    /// <summary>VMemDirect method 1: a fault pages the whole chunk in synchronously; page-outs run on the page-out thread.</summary>
    AsyncMethod1,

    /// <summary>VMemDirect method 2: a fault pages in only the faulting page; the rest of its chunk and the page-outs run asynchronously.</summary>
    AsyncMethod2,

    /// <summary>The baseline: plain OS swap. Page-outs happen synchronously under pressure, one page is paged in per fault, and placing a page that is swapped pages it in first.</summary>
    Naive,
}

/// <summary>Options of a VM's private virtual memory (VMemDirect, seed 004).</summary>
public sealed class PrivateVirtualMemoryOptions
{
    /// <summary>The VM's fixed physical share in pages. Default: the guest memory's <c>ResidentBudgetPages</c>.</summary>
    public long? SharePages { get; set; }

    /// <summary>Pages per chunk, the unit of the LRU and of method-1 page-in. Default 256 (1 MiB), as the paper.</summary>
    public int ChunkPages { get; set; } = 256;

    /// <summary>m: the LRU has 2^m chunk queues. Default 8, as the paper.</summary>
    public int QueueBits { get; set; } = 8;

    /// <summary>Paging method. Default <see cref="PagingMode.AsyncMethod1"/>.</summary>
    public PagingMode Mode { get; set; } = PagingMode.AsyncMethod1;

    /// <summary>Swap file to create (must not exist). Default: a new file in the temp directory, deleted when the memory is disposed.</summary>
    public string? SwapFilePath { get; set; }

    /// <summary>Pages the swap file can hold (rounded up to whole chunks). Default: the whole VM, so a page-out never finds it full.</summary>
    public long? SwapPages { get; set; }

    /// <summary>Pages the page-out thread keeps free below the share so page-ins rarely wait for a page-out. Default: one chunk.</summary>
    public int? FreeReservePages { get; set; }

    /// <summary>Swap I/O bypasses the page cache (O_DIRECT), so paging costs what the disk costs, as Linux swap does. Default false (buffered).</summary>
    public bool DirectIo { get; set; }

    /// <summary>VMemDirect: chunks' worth of frames an eviction may park for the next page-in (<see cref="Guest.FrameRecycler"/>), so a fixed share reuses its RAM instead of handing it back to the kernel and having fresh pages cleared for every page-in; 0 turns it off. This RAM is outside <c>ResidentPages</c>, at most this many chunks. Ignored in <see cref="PagingMode.Naive"/>, which pages as the OS does. Default 2.</summary>
    public int RecycledFrameChunks { get; set; } = 2;

    /// <summary>The swap file's blocks are written (zeroes) when it is created, as a swap device's are, so the first page-outs and placements overwrite instead of converting fallocate's unwritten extents (<see cref="PrivateSwapFile.Prewrite"/>). Costs one sequential write of the file, before any page moves. Default true.</summary>
    public bool PrewriteSwapFile { get; set; } = true;

    /// <summary>Chunks whose directly placed swap pages are gathered in a 1-chunk buffer and written as one run (when the chunk's last page arrives, the buffers run out, or <c>FlushPlacements</c>), instead of one write per page; 0 writes every page at once. The buffers are the host's, outside the VM's share. Default 16.</summary>
    public int PlacementStagingChunks { get; set; } = 16;

    /// <summary>Part of the share direct placement keeps for hot pages: first copies fill memory only up to share - free reserve - this, and a retransfer of a page in swap (dirtied again during the migration, so hot) goes into memory while that part has room, its swap copy dropped without a read. 0: retransfers are updated where they are. Default 0.</summary>
    public int HotReservePages { get; set; }

    /// <summary>A staged chunk whose placed pages are complete is written by the pager's placement writer thread instead of the stream that placed its last page, which goes on receiving; false writes it on the placing thread. Default true.</summary>
    public bool AsyncPlacementWrites { get; set; } = true;

    /// <summary>Placement writer threads (with <see cref="AsyncPlacementWrites"/>): chunks written at once, each under its own chunk's lock. One keeps a single write in flight, and on shared cores the disk then idles while the writer waits for a core. Default 2.</summary>
    public int PlacementWriters { get; set; } = 2;

    /// <summary>Linux 6.12+: the scheduler slice each placement writer thread asks for (see <see cref="PrivateVirtualMemory.PlacementWriterSliceRefusal"/>). A writer sleeps in each O_DIRECT write; with a short slice the kernel lets it preempt a busy thread (a vCPU) as soon as its write completes, instead of the disk idling while it waits out that thread's slice (1.4 ms on 2 cores). Null leaves the kernel's default. Default 0.1 ms, the shortest the kernel takes.</summary>
    public TimeSpan? PlacementWriterSlice { get; set; } = TimeSpan.FromMilliseconds(0.1);

    /// <summary>Linux: each placement writer writes staged chunks through an io_uring of its own with the staging buffers registered (IORING_OP_WRITE_FIXED), so an O_DIRECT write does not pin and unpin its buffer's pages each time; a stream that must write a staged chunk out itself (every buffer taken) takes a ring from a small pool and puts the chunk's runs in flight together; where the kernel refuses, <see cref="PrivateVirtualMemory.PlacementRingRefusal"/> says why and the writers use pwrite. False always uses pwrite. Default true.</summary>
    public bool PlacementWritesOnIoUring { get; set; } = true;

    /// <summary>Naive mode: swapped pages read per fault, an aligned window around the faulting page within its chunk (Linux's swap readahead, vm.page-cluster = 3); 1 reads only the faulting page. Default 8.</summary>
    public int NaiveReadaheadPages { get; set; } = 8;

    /// <summary>How often access bits are harvested into the LRU (an accessed chunk moves up). Default 100 ms.</summary>
    public TimeSpan AccessScanInterval { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Access scans between two agings of the LRU (2^m queues compressed into 2^(m-1)). Default 10 (once a second at the default interval).</summary>
    public int ScansPerAging { get; set; } = 10;

    /// <summary>Run the access scan on a timer; tests turn it off and call the scan themselves. Default true.</summary>
    public bool ScanAccessBitsPeriodically { get; set; } = true;

    /// <summary>Clock for the periodic access scan. Default <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    /// <summary>Throws an exception naming the first invalid option for a memory of <paramref name="pageCount"/> pages.</summary>
    public void Validate(long pageCount)
    {
        if (SharePages is { } s && (s <= 0 || s > pageCount))
            throw new ArgumentException($"PrivateVirtualMemoryOptions.SharePages must be within 1..{pageCount}, was {s}.", nameof(SharePages));
        if (ChunkPages <= 0 || ChunkPages > 1 << 16)
            throw new ArgumentException($"PrivateVirtualMemoryOptions.ChunkPages must be within 1..65536, was {ChunkPages}.", nameof(ChunkPages));
        if (QueueBits is < 1 or > 16)
            throw new ArgumentException($"PrivateVirtualMemoryOptions.QueueBits must be within 1..16, was {QueueBits}.", nameof(QueueBits));
        if (!Enum.IsDefined(Mode))
            throw new ArgumentException($"PrivateVirtualMemoryOptions.Mode {(int)Mode} is not a paging mode.", nameof(Mode));
        if (SwapPages is { } w && (w <= 0 || w > pageCount))
            throw new ArgumentException($"PrivateVirtualMemoryOptions.SwapPages must be within 1..{pageCount}, was {w}.", nameof(SwapPages));
        if (FreeReservePages is { } r && r < 0)
            throw new ArgumentException($"PrivateVirtualMemoryOptions.FreeReservePages must not be negative, was {r}.", nameof(FreeReservePages));
        if (HotReservePages < 0 || (SharePages is { } sp && HotReservePages > sp / 2))
            throw new ArgumentException($"PrivateVirtualMemoryOptions.HotReservePages must be within 0..half the share, was {HotReservePages}.", nameof(HotReservePages));
        if (PlacementStagingChunks is < 0 or > 4096)
            throw new ArgumentException($"PrivateVirtualMemoryOptions.PlacementStagingChunks must be within 0..4096, was {PlacementStagingChunks}.", nameof(PlacementStagingChunks));
        if (RecycledFrameChunks is < 0 or > 1024)
            throw new ArgumentException($"PrivateVirtualMemoryOptions.RecycledFrameChunks must be within 0..1024, was {RecycledFrameChunks}.", nameof(RecycledFrameChunks));
        if (PlacementWriters is < 1 or > 16)
            throw new ArgumentException($"PrivateVirtualMemoryOptions.PlacementWriters must be within 1..16, was {PlacementWriters}.", nameof(PlacementWriters));
        if (PlacementWriterSlice is { } slice && (slice < SchedulerSlice.Shortest || slice > SchedulerSlice.Longest))
            throw new ArgumentException($"PrivateVirtualMemoryOptions.PlacementWriterSlice must be null or within 0.1..100 ms, was {slice.TotalMilliseconds} ms.", nameof(PlacementWriterSlice));
        if (NaiveReadaheadPages is < 1 or > 256 || (NaiveReadaheadPages & (NaiveReadaheadPages - 1)) != 0)
            throw new ArgumentException($"PrivateVirtualMemoryOptions.NaiveReadaheadPages must be a power of two within 1..256, was {NaiveReadaheadPages}.", nameof(NaiveReadaheadPages));
        if (AccessScanInterval <= TimeSpan.Zero)
            throw new ArgumentException($"PrivateVirtualMemoryOptions.AccessScanInterval must be positive, was {AccessScanInterval}.", nameof(AccessScanInterval));
        if (ScansPerAging <= 0)
            throw new ArgumentException($"PrivateVirtualMemoryOptions.ScansPerAging must be positive, was {ScansPerAging}.", nameof(ScansPerAging));
        ArgumentNullException.ThrowIfNull(TimeProvider, nameof(TimeProvider));
    }
}
