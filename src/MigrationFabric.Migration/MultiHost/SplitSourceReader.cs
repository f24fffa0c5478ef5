using MigrationFabric.Contracts.V1;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Integrity;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Migration.Codec;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.RemotePaging;
using MigrationFabric.Rpc;
using MigrationFabric.Rpc.Client;

namespace MigrationFabric.Migration.MultiHost;

/// <summary>Reads a split VM's pages at its main host wherever they live (the main's RAM, or the sub-host its memory map names) without paging them in: the source side of moving a split VM again, and its integrity check.</summary>
/// <remarks>
/// Each read holds the main's paging off (<see cref="RemotePager.HoldPagingAsync"/>), so a page cannot be paged out between
/// reading its residency and copying it. A page Remote at the main is fetched from its sub-host with up to
/// runPages - 1 following pages that sub-host holds, kept until the map changes (a page-in or page-out bumps
/// its version); within a version a sub-host's copy of a page Remote at the main is the only one, so it is current. A
/// page Remote at the main and owned by it was never written: zeroes. A sub-host that does not answer fails the read
/// with an <see cref="IOException"/> naming it (before switch-over the migration fails and the VM stays split at the main).
/// </remarks>
public sealed class SplitSourceReader : IAsyncPageContentReader, IDisposable
{
    /// <summary>Default of the pages asked of a sub-host in one RemotePages call at most (the read one and the next ones it holds).</summary>
    public const int DefaultRunPages = 64;

    /// <summary>Most pages one call may ask for: 512 pages (2 MiB) keep a reply under a channel's default 4 MiB receive limit, which 1024 exceed.</summary>
    public const int MaxRunPages = 512;

    // Fetched pages are only verified on arrival and cached (the page streams hash them again in the migration's kind): the faster hash.
    private const Memory.Integrity.PageDigestKind FetchChecksum = Memory.Integrity.PageDigestKind.Xxh3;

    private readonly string _vm;
    private readonly GuestMemory _memory;
    private readonly RemotePager _pager;
    private readonly TimeSpan _timeout;
    private readonly RpcChannel?[] _channels;
    private readonly int _runPages;
    private readonly byte[] _cache;
    private readonly long[] _cached;
    private int _cachedCount;
    private long _cacheVersion = -1;
    private long _fetched, _calls;

    /// <summary>Reads VM <paramref name="vm"/>'s pages at its main, whose <paramref name="memory"/> <paramref name="pager"/> pages.</summary>
    /// <param name="vm">The VM's name (the sub-hosts hold its pages under it).</param>
    /// <param name="memory">The main's guest memory (the one the pager pages).</param>
    /// <param name="pager">The main's remote pager: its map says where each page lives.</param>
    /// <param name="timeout">Deadline of one RemotePages call (RemotePagerOptions.Timeout's default: 10 s).</param>
    /// <param name="channel">Options of the channels to the sub-hosts (null: defaults).</param>
    /// <param name="runPages">Pages asked of a sub-host in one call at most, 1..<see cref="MaxRunPages"/> (default <see cref="DefaultRunPages"/>).</param>
    public SplitSourceReader(string vm, GuestMemory memory, RemotePager pager, TimeSpan? timeout = null, RpcChannelOptions? channel = null, int runPages = DefaultRunPages)
    {
        ArgumentException.ThrowIfNullOrEmpty(vm);
        ArgumentNullException.ThrowIfNull(memory);
        ArgumentNullException.ThrowIfNull(pager);
        if (pager.Map.PageCount != memory.PageCount)
            throw new ArgumentException($"the pager's map covers {pager.Map.PageCount} pages but VM {vm}'s memory has {memory.PageCount}.", nameof(pager));
        if (timeout is { } t && t <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(timeout), t, "the RemotePages deadline must be positive.");
        if (runPages < 1 || runPages > MaxRunPages) throw new ArgumentOutOfRangeException(nameof(runPages), runPages, $"runPages must be within 1..{MaxRunPages}.");
        _runPages = runPages;
        _cache = new byte[runPages * Page.Size];
        _cached = new long[runPages];
        _vm = vm;
        _memory = memory;
        _pager = pager;
        _timeout = timeout ?? TimeSpan.FromSeconds(10);
        _channels = new RpcChannel?[pager.Map.SubHosts.Count + 1];
        for (int k = 1; k < _channels.Length; k++) _channels[k] = new RpcChannel(pager.Map.SubHosts[k - 1], channel ?? new RpcChannelOptions());
    }

    /// <summary>Pages fetched from sub-hosts so far (read-ahead included).</summary>
    public long PagesFetched => Volatile.Read(ref _fetched);

    /// <summary>RemotePages calls made so far.</summary>
    public long Calls => Volatile.Read(ref _calls);

    /// <inheritdoc/>
    /// <remarks>The caller's <paramref name="residency"/> may be stale: the page is looked at again with paging held. Blocks a thread
    /// while a fault's paging or a sub-host's reply is awaited: for synchronous callers only (<see cref="PageDigest.OfMemory"/>, the
    /// report's VM digest); the page streams and the integrity check use <see cref="ReadPageAsync"/>.</remarks>
    public void ReadPage(PageNumber page, PageResidency residency, Span<byte> destination)
    {
        CheckLength(destination.Length);
        long p = page.Value;
        using var hold = _pager.HoldPaging();
        if (TryReadHeld(p, destination, out int host)) return;
        FetchAsync(p, host, CancellationToken.None).GetAwaiter().GetResult();
        CopyFetched(p, host, destination);
    }

    /// <inheritdoc/>
    /// <remarks>The caller's <paramref name="residency"/> may be stale: the page is looked at again with paging held.
    /// One caller at a time (the fetched run is cached for the next pages).</remarks>
    public async ValueTask ReadPageAsync(PageNumber page, PageResidency residency, Memory<byte> destination, CancellationToken cancellationToken)
    {
        CheckLength(destination.Length);
        long p = page.Value;
        using var hold = await _pager.HoldPagingAsync(cancellationToken).ConfigureAwait(false);
        if (TryReadHeld(p, destination.Span, out int host)) return;
        await FetchAsync(p, host, cancellationToken).ConfigureAwait(false);
        CopyFetched(p, host, destination.Span);
    }

    private static void CheckLength(int length)
    {
        if (length != Page.Size)
            throw new ArgumentException($"a page read fills exactly {Page.Size} bytes, got {length}.", "destination");
    }

    /// <summary>Reads page <paramref name="p"/> with paging held if that needs no call: from the main's RAM, as zeroes, or from the cached run; otherwise false and the sub-host to fetch it from.</summary>
    private bool TryReadHeld(long p, Span<byte> destination, out int host)
    {
        host = MemoryMap.Main;
        var now = _memory.GetResidency(p);
        switch (now)
        {
            case PageResidency.Resident or PageResidency.Evicting:
                // Evicting still has its bytes: a page-out only drops them inside the paging just held off.
                _memory.GetPageBytes(p).CopyTo(destination);
                return true;
            case PageResidency.Zero or PageResidency.Ballooned:
                destination.Clear();
                return true;
            case PageResidency.Remote:
                host = _pager.Map.HostOf(p);
                if (host == MemoryMap.Main)
                {
                    destination.Clear();
                    return true;
                }
                return TryCached(p, destination);
            default:
                throw new InvalidOperationException($"VM {_vm}: page {p} is {now} at the main while its paging is held; it cannot be read.");
        }
    }

    private void CopyFetched(long p, int host, Span<byte> destination)
    {
        if (!TryCached(p, destination))
            throw new IOException($"VM {_vm}: sub-host {_pager.Map.SubHosts[host - 1]} did not return page {p}, which the main's memory map says it holds.");
    }

    private bool TryCached(long page, Span<byte> destination)
    {
        if (_cacheVersion != _pager.Map.Version) return false;
        int i = Array.BinarySearch(_cached, 0, _cachedCount, page);
        if (i < 0) return false;
        _cache.AsSpan(i * Page.Size, Page.Size).CopyTo(destination);
        return true;
    }

    /// <summary>Fetches <paramref name="page"/> and the next pages Remote here that <paramref name="host"/> holds (looked for within 4 x the run) into the cache.</summary>
    private async Task FetchAsync(long page, int host, CancellationToken cancellationToken)
    {
        var map = _pager.Map;
        var request = new RemotePagesRequest { Vm = _vm, Checksum = PageChecksums.ToWire(FetchChecksum) };
        long end = Math.Min(_memory.PageCount, page + 4L * _runPages);
        for (long q = page; q < end && request.PageNumbers.Count < _runPages; q++)
            if (map.HostOf(q) == host && _memory.GetResidency(q) == PageResidency.Remote) request.PageNumbers.Add((ulong)q);
        RemotePagesResponse response;
        try
        {
            Interlocked.Increment(ref _calls);
            response = await _channels[host]!.AsyncUnaryCall(PagesContract.RemotePages, request, new CallOptions(CancellationToken: cancellationToken).WithTimeout(_timeout))
                .ResponseAsync.ConfigureAwait(false);
        }
        catch (Exception e) when (e is RpcException or IOException or HttpRequestException || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            throw new IOException($"VM {_vm}: sub-host {map.SubHosts[host - 1]} failed to return page {page} and the {request.PageNumbers.Count - 1} after it that it holds: {e.Message}", e);
        }
        _cachedCount = 0;
        _cacheVersion = -1;
        var reader = new PageBatchReader(response.Batch ?? new PageBatch(), _memory.PageCount, FetchChecksum);
        // Requested pages are ascending; the cache keeps them so, for the binary search.
        while (reader.TryRead(out var entry) && _cachedCount < _runPages)
        {
            if (_cachedCount > 0 && entry.Page <= _cached[_cachedCount - 1]) continue;
            entry.DecodeInto(_cache.AsSpan(_cachedCount * Page.Size, Page.Size));
            _cached[_cachedCount++] = entry.Page;
        }
        Interlocked.Add(ref _fetched, _cachedCount);
        _cacheVersion = map.Version;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        for (int k = 1; k < _channels.Length; k++) _channels[k]?.Dispose();
    }
}
