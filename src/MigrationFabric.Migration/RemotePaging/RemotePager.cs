using MigrationFabric.Contracts.V1;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Migration.Codec;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.MultiHost;
using MigrationFabric.Rpc;
using MigrationFabric.Rpc.Client;

namespace MigrationFabric.Migration.RemotePaging;

/// <summary>A split VM's main host: a vCPU touching a Remote page pages it in from the sub-host the <see cref="MemoryMap"/> names (with the next pages that sub-host holds); when the main's share is full, cold pages go out to a sub-host with room first (remote paging).</summary>
/// <remarks>
/// Install as the main MMU's fault handler. The constructor adopts the guest memory as it finds it, so the same call
/// serves a fresh main host and one whose agent restarted (see MultiHost/README.md, "Memory map"): Resident pages are
/// the main's; Zero pages become Remote (a fault then zero-fills a main-owned page locally, keeping the budget); a page
/// left Evicting is finished (map names a sub-host) or cancelled (map names the main); one left Installing is refetched.
/// Paging is serialized (one fault's page-out and page-in at a time) so a page is never fetched while it is being stored.
/// Victims are chosen by a clock hand that skips pages accessed since it last passed (second chance, for at most 16 pages per victim wanted). A sub-host that
/// fails a call is lost: the pages only it held are gone, <see cref="Lost"/> says so, and a later fault on one of them
/// stops its vCPU with that error; pages on the other sub-hosts keep being served, and page-outs avoid the lost one.
/// </remarks>
public sealed class RemotePager : IPageFaultHandler, IDisposable
{
    private readonly GuestMemory _memory;
    private readonly RemotePagerOptions _options;
    private readonly RpcChannel[] _channels;
    private readonly SubHostLostException?[] _lostHosts;
    private readonly long[] _pageInsFrom, _pageOutsTo;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly TaskCompletionSource<SubHostLostException> _lost = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly long[] _victims;
    private readonly long[] _wanted;
    private long _hand;
    private long _pageIns, _pageOuts, _prefetched, _zeroFills;

    /// <summary>Pages VM <paramref name="vm"/>'s <paramref name="memory"/> (the main host's copy) to and from the sub-hosts of <paramref name="map"/>, which it keeps up to date from now on.</summary>
    /// <exception cref="ArgumentException">An option is invalid (the message names it), or the map is for another VM size.</exception>
    public RemotePager(string vm, GuestMemory memory, MemoryMap map, RemotePagerOptions options)
    {
        ArgumentException.ThrowIfNullOrEmpty(vm);
        ArgumentNullException.ThrowIfNull(memory);
        ArgumentNullException.ThrowIfNull(map);
        ArgumentNullException.ThrowIfNull(options);
        if (map.PageCount != memory.PageCount) throw new ArgumentException($"the memory map covers {map.PageCount} pages but VM {vm} has {memory.PageCount}.", nameof(map));
        options.Validate(memory.PageCount, map.SubHosts.Count);
        Vm = vm;
        Map = map;
        _memory = memory;
        _options = options;
        _victims = new long[options.PageOutBatch + options.Prefetch + 1];
        _wanted = new long[options.Prefetch + 1];
        _lostHosts = new SubHostLostException?[map.SubHosts.Count + 1];
        _pageInsFrom = new long[map.SubHosts.Count + 1];
        _pageOutsTo = new long[map.SubHosts.Count + 1];
        _channels = new RpcChannel[map.SubHosts.Count + 1];
        for (int k = 1; k < _channels.Length; k++) _channels[k] = new RpcChannel(map.SubHosts[k - 1], options.Channel ?? new RpcChannelOptions());
        Adopt();
    }

    /// <summary>Pages to and from one sub-host at <paramref name="subHost"/>, which holds every page Remote at the main now.</summary>
    public RemotePager(string vm, GuestMemory memory, Uri subHost, RemotePagerOptions options)
        : this(vm, memory, MapOfRemote(memory, subHost), options)
    {
    }

    /// <summary>The VM.</summary>
    public string Vm { get; }

    /// <summary>Where every page lives, kept current by this pager (export with <see cref="MemoryMap.Serialize"/> at any time).</summary>
    public MemoryMap Map { get; }

    /// <summary>The first sub-host's data-plane address.</summary>
    public Uri SubHost => Map.SubHosts[0];

    /// <summary>Pages fetched from sub-hosts (prefetched ones included).</summary>
    public long PageIns => Volatile.Read(ref _pageIns);

    /// <summary>Pages stored to sub-hosts.</summary>
    public long PageOuts => Volatile.Read(ref _pageOuts);

    /// <summary>Pages fetched along with a faulted one (part of <see cref="PageIns"/>).</summary>
    public long PagesPrefetched => Volatile.Read(ref _prefetched);

    /// <summary>Faults on main-owned pages never written (filled with zeroes here, no call).</summary>
    public long ZeroFills => Volatile.Read(ref _zeroFills);

    /// <summary>Pages fetched from sub-host <paramref name="subHost"/> (0-based, in the map's order).</summary>
    public long PageInsFrom(int subHost) => Volatile.Read(ref _pageInsFrom[subHost + 1]);

    /// <summary>Pages stored to sub-host <paramref name="subHost"/> (0-based, in the map's order).</summary>
    public long PageOutsTo(int subHost) => Volatile.Read(ref _pageOutsTo[subHost + 1]);

    /// <summary>Completes with the first loss when a sub-host fails a call; never completes while they all serve.</summary>
    public Task<SubHostLostException> Lost => _lost.Task;

    /// <summary>The loss of sub-host <paramref name="subHost"/> (0-based), or null while it serves.</summary>
    public SubHostLostException? LossOf(int subHost) => Volatile.Read(ref _lostHosts[subHost + 1]);

    private static MemoryMap MapOfRemote(GuestMemory memory, Uri subHost)
    {
        ArgumentNullException.ThrowIfNull(memory);
        ArgumentNullException.ThrowIfNull(subHost);
        var map = new MemoryMap(memory.PageCount, [subHost]);
        for (long p = 0; p < memory.PageCount; p++)
            if (memory.GetResidency(p) == PageResidency.Remote) map.Assign(p, 1);
        return map;
    }

    private void Adopt()
    {
        for (long p = 0; p < _memory.PageCount; p++)
        {
            switch (_memory.GetResidency(p))
            {
                case PageResidency.Resident:
                    if (Map.HostOf(p) != MemoryMap.Main) Map.Assign(p, MemoryMap.Main);
                    break;
                case PageResidency.Zero:
                    // Through the pager, so a first write cannot grow the main past its budget.
                    _memory.TryTransition(p, PageResidency.Zero, PageResidency.Remote);
                    break;
                case PageResidency.Evicting:
                    // A page-out cut short: the map names the sub-host only once it holds the page (see the README's rule).
                    if (Map.HostOf(p) != MemoryMap.Main) _memory.CompleteEviction(p, 1, PageResidency.Remote);
                    else _memory.CancelEviction(p, 1);
                    break;
                case PageResidency.Installing:
                    // A page-in cut short: the map still names where it came from.
                    _memory.AbortInstall(p, PageResidency.Remote);
                    break;
            }
        }
    }

    /// <inheritdoc/>
    public async ValueTask ResolveAsync(PageFault fault, CancellationToken cancellationToken)
    {
        if (fault.Residency != PageResidency.Remote)
            throw new PageFaultException(fault.Page, $"the remote pager resolves Remote pages only; this page is {fault.Residency}.");
        long page = fault.Page.Value;
        int host = Map.HostOf(page);
        if (Volatile.Read(ref _lostHosts[host]) is { } gone) throw new PageFaultException(fault.Page, gone.Message, gone);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // A fault a stopped vCPU gave up on can reach the gate after Dispose: it must not page into memory about to go.
            if (Volatile.Read(ref _closed) != 0) throw new PageFaultException(fault.Page, $"VM {Vm}: the remote pager is disposed.");
            if (_memory.GetResidency(page) != PageResidency.Remote) return;
            host = Map.HostOf(page);
            if (Volatile.Read(ref _lostHosts[host]) is { } lost) throw new PageFaultException(fault.Page, lost.Message, lost);
            int wanted = host == MemoryMap.Main ? 1 : CollectWanted(page, host);
            // The page-out making room and the fetch overlap (they touch different pages); the fetched pages are installed
            // only once the room is made, so the share holds even while they land.
            long over = _memory.ResidentPages + wanted - _options.BudgetPages;
            var pageOut = over > 0 ? PageOutAsync(page, (int)Math.Max(over, _options.PageOutBatch), cancellationToken) : Task.CompletedTask;
            Task<RemotePagesResponse>? fetch = null;
            if (host != MemoryMap.Main)
            {
                var request = new RemotePagesRequest { Vm = Vm, Checksum = PageChecksums.ToWire(_options.Checksum) };
                for (int i = 0; i < wanted; i++) request.PageNumbers.Add((ulong)_wanted[i]);
                fetch = CallAsync(PagesContract.RemotePages, request, host, fault.Page, cancellationToken);
            }
            long room;
            try
            {
                await pageOut.ConfigureAwait(false);
                room = _options.BudgetPages - _memory.ResidentPages;
                if (room <= 0) throw new PageFaultException(fault.Page, $"VM {Vm}: the main host is at its budget of {_options.BudgetPages} pages and nothing could be paged out.");
            }
            catch
            {
                // The fetch's own failure, if any, is recorded already (a lost sub-host); the fault fails for the page-out.
                if (fetch is not null) await IgnoreOutcomeAsync(fetch).ConfigureAwait(false);
                throw;
            }
            if (fetch is null)
            {
                ZeroFill(fault.Page);
                return;
            }
            var response = await fetch.ConfigureAwait(false);
            Install(response.Batch ?? new PageBatch(), fault.Page, host, room);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>The faulted page, then up to Prefetch following pages that are Remote here and held by the same sub-host; returns how many.</summary>
    private int CollectWanted(long page, int host)
    {
        _wanted[0] = page;
        int n = 1;
        long end = Math.Min(_memory.PageCount, page + 1 + 4L * _options.Prefetch);
        for (long p = page + 1; p < end && n < _wanted.Length; p++)
            if (Map.HostOf(p) == host && _memory.GetResidency(p) == PageResidency.Remote) _wanted[n++] = p;
        return n;
    }

    private void ZeroFill(PageNumber page)
    {
        var target = _memory.BeginInstall(page, PageResidency.Remote);
        if (target.IsEmpty) return;
        target.Clear();
        _memory.CompleteInstall(page, PageResidency.Remote);
        Interlocked.Increment(ref _zeroFills);
    }

    private static async Task IgnoreOutcomeAsync(Task task)
    {
        try { await task.ConfigureAwait(false); }
        catch (Exception e) when (e is PageFaultException or OperationCanceledException)
        {
            // Observed; the caller reports its own failure.
        }
    }

    /// <summary>Installs the faulted page and, while <paramref name="room"/> lasts, the prefetched ones of <paramref name="host"/>.</summary>
    private void Install(PageBatch batch, PageNumber faulted, int host, long room)
    {
        var reader = new PageBatchReader(batch, _memory.PageCount, _options.Checksum);
        bool got = false;
        int installed = 0;
        Span<long> done = stackalloc long[_wanted.Length];
        long limit = Math.Min(done.Length, room);
        while (reader.TryRead(out var entry))
        {
            long page = entry.Page;
            if (page != faulted.Value && (installed >= limit - (got ? 0 : 1) || Map.HostOf(page) != host)) continue;
            var target = _memory.BeginInstall(page, PageResidency.Remote);
            if (target.IsEmpty) continue;
            try { entry.DecodeInto(target); }
            catch { _memory.AbortInstall(page, PageResidency.Remote); throw; }
            _memory.CompleteInstall(page, PageResidency.Remote);
            // A prefetched page is about to be used: without the bit, the clock would take it first (it is the only unaccessed page around).
            if (page != faulted.Value) _memory.Accessed.MarkAccessed(page);
            if (installed < done.Length) done[installed++] = page;
            if (page == faulted.Value) got = true;
        }
        Map.Move(done[..installed], MemoryMap.Main);
        Interlocked.Add(ref _pageIns, installed);
        Interlocked.Add(ref _pageInsFrom[host], installed);
        if (installed > 1) Interlocked.Add(ref _prefetched, installed - (got ? 1 : 0));
        if (!got) throw new PageFaultException(faulted, $"sub-host {Map.SubHosts[host - 1]} did not return the faulted page.");
    }

    private async Task PageOutAsync(long faulted, int count, CancellationToken cancellationToken)
    {
        int n = ChooseVictims(faulted, Math.Min(count, _victims.Length));
        if (n == 0) return;
        try
        {
            while (true)
            {
                int target = ChooseTarget(n);
                if (target < 0)
                    throw new PageFaultException(new PageNumber(faulted), $"VM {Vm}: the main host is at its budget and no sub-host has room for {n} pages (budgets {string.Join(", ", _options.SubHostBudgetPages ?? [])}, lost: {LostList()}).");
                if (await TryStoreAsync(target, n, faulted, cancellationToken).ConfigureAwait(false)) return;
            }
        }
        catch
        {
            for (int i = 0; i < n; i++) _memory.CancelEviction(_victims[i], 1);
            throw;
        }
    }

    /// <summary>Stores the victims at <paramref name="host"/>, records them there, then frees them here; false (victims still Evicting) when that sub-host was lost meanwhile.</summary>
    private async Task<bool> TryStoreAsync(int host, int n, long faulted, CancellationToken cancellationToken)
    {
        var builder = new PageBatchBuilder(n, checksum: _options.Checksum);
        for (int i = 0; i < n; i++) builder.AddPage(_victims[i], _memory.GetPageBytes(_victims[i]));
        using (var encoded = builder.Build(0))
        {
            try
            {
                await CallAsync(PagesContract.StorePages, new StorePagesRequest { Vm = Vm, Batch = encoded.Batch, Checksum = PageChecksums.ToWire(_options.Checksum) }, host, new PageNumber(faulted), cancellationToken).ConfigureAwait(false);
            }
            catch (PageFaultException) when (Volatile.Read(ref _lostHosts[host]) is not null)
            {
                return false;
            }
        }
        // The map names the sub-host before the main lets go of the pages: a map persisted from here on never sends a fault to a host without the page.
        Map.Move(_victims.AsSpan(0, n), host);
        if (_options.MapChanged is { } changed)
        {
            try { await changed(Map, cancellationToken).ConfigureAwait(false); }
            catch (Exception e)
            {
                Map.Move(_victims.AsSpan(0, n), MemoryMap.Main);
                throw new PageFaultException(new PageNumber(faulted), $"VM {Vm}: the memory map could not be recorded after a page-out, so the pages stay here: {e.Message}", e);
            }
        }
        for (int i = 0; i < n;)
        {
            int run = RunAt(i, n);
            _memory.CompleteEviction(_victims[i], run, PageResidency.Remote);
            i += run;
        }
        Interlocked.Add(ref _pageOuts, n);
        Interlocked.Add(ref _pageOutsTo[host], n);
        return true;
    }

    /// <summary>The serving sub-host with the most room for <paramref name="n"/> pages (no budgets: the one holding the fewest); -1 if none has room.</summary>
    private int ChooseTarget(int n)
    {
        int best = -1;
        long bestRoom = long.MinValue;
        for (int k = 1; k < _channels.Length; k++)
        {
            if (Volatile.Read(ref _lostHosts[k]) is not null) continue;
            long budget = _options.SubHostBudgetPages is { } b ? b[k - 1] : long.MaxValue;
            long room = budget - Map.PagesOn(k);
            if (room < n || room <= bestRoom) continue;
            best = k;
            bestRoom = room;
        }
        return best;
    }

    /// <summary>Moves up to <paramref name="max"/> Resident pages (not <paramref name="faulted"/>) to Evicting, clock order with a second chance for accessed pages.</summary>
    /// <remarks>Candidates first, then one BeginEviction per run of consecutive pages: each call waits out the vCPUs behind a process-wide barrier, too dear per page.</remarks>
    private int ChooseVictims(long faulted, int max)
    {
        int n = 0;
        long pages = _memory.PageCount;
        var accessed = _memory.Accessed;
        // The second chance is bounded: when everything resident was used lately (a sweep), clearing bits round the whole VM per batch would cost more than the page-out.
        long chances = 16L * max;
        for (long scanned = 0; scanned < 2 * pages && n < max; scanned++)
        {
            long p = _hand;
            _hand = p + 1 == pages ? 0 : p + 1;
            if (p == faulted || _memory.GetResidency(p) != PageResidency.Resident) continue;
            if (chances > 0 && accessed.IsSet(p))
            {
                accessed.Clear(p);
                chances--;
                continue;
            }
            _victims[n++] = p;
        }
        for (int i = 0; i < n;)
        {
            int run = RunAt(i, n);
            _memory.BeginEviction(_victims[i], run);
            i += run;
        }
        // Keep the ones this pager claimed (a page a vCPU or installer changed meanwhile is left alone).
        int kept = 0;
        for (int i = 0; i < n; i++)
            if (_memory.GetResidency(_victims[i]) == PageResidency.Evicting) _victims[kept++] = _victims[i];
        return kept;
    }

    /// <summary>How many victims from index <paramref name="i"/> are consecutive pages.</summary>
    private int RunAt(int i, int n)
    {
        int run = 1;
        while (i + run < n && _victims[i + run] == _victims[i] + run) run++;
        return run;
    }

    private string LostList()
    {
        var names = new List<string>();
        for (int k = 1; k < _lostHosts.Length; k++)
            if (Volatile.Read(ref _lostHosts[k]) is not null) names.Add(Map.SubHosts[k - 1].ToString());
        return names.Count == 0 ? "none" : string.Join(", ", names);
    }

    private async Task<TResponse> CallAsync<TRequest, TResponse>(Method<TRequest, TResponse> method, TRequest request, int host, PageNumber page, CancellationToken cancellationToken)
        where TRequest : class, Google.Protobuf.IMessage<TRequest>, new() where TResponse : class, Google.Protobuf.IMessage<TResponse>, new()
    {
        try
        {
            return await _channels[host].AsyncUnaryCall(method, request, new CallOptions(CancellationToken: cancellationToken).WithTimeout(_options.Timeout))
                .ResponseAsync.ConfigureAwait(false);
        }
        catch (Exception e) when (e is RpcException or IOException or HttpRequestException || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            var lost = new SubHostLostException(Vm, Map.SubHosts[host - 1], CountLost(host), e);
            Volatile.Write(ref _lostHosts[host], lost);
            _lost.TrySetResult(lost);
            throw new PageFaultException(page, lost.Message, lost);
        }
    }

    /// <summary>Asks every sub-host not yet lost whether it still holds this VM (a RemotePages call for page 0, whose reply is dropped); one that fails is lost, as if a fault had found it so. For the Host to call when membership changes or periodically: otherwise a loss shows at the next fault on one of its pages.</summary>
    /// <returns>The sub-hosts lost so far (0-based indexes in the map's order).</returns>
    public async Task<IReadOnlyList<int>> ProbeAsync(CancellationToken cancellationToken = default)
    {
        var probes = new List<Task>();
        for (int k = 1; k < _channels.Length; k++)
            if (Volatile.Read(ref _lostHosts[k]) is null)
                probes.Add(CallAsync(PagesContract.RemotePages, new RemotePagesRequest { Vm = Vm, PageNumbers = { 0UL } }, k, new PageNumber(0), cancellationToken));
        try { await Task.WhenAll(probes).ConfigureAwait(false); }
        catch (PageFaultException)
        {
            // Recorded as a loss by CallAsync; reported below.
        }
        var lost = new List<int>();
        for (int k = 1; k < _lostHosts.Length; k++)
            if (Volatile.Read(ref _lostHosts[k]) is not null) lost.Add(k - 1);
        return lost;
    }

    /// <summary>Pages the map gives to <paramref name="host"/> that the main does not hold: they exist only there.</summary>
    private long CountLost(int host)
    {
        long n = 0;
        for (long p = 0; p < _memory.PageCount; p++)
            if (Map.HostOf(p) == host && _memory.GetResidency(p) != PageResidency.Resident) n++;
        return n;
    }

    /// <summary>Holds paging off until the result is disposed (a fault waits meanwhile), so every page's residency and the <see cref="Map"/> stay as read: how a split VM's pages are read to move it again (MultiHost/SplitSourceReader).</summary>
    public PagingHold HoldPaging()
    {
        _gate.Wait();
        return Held();
    }

    /// <summary>As <see cref="HoldPaging"/>, waiting for a fault's paging in flight without blocking a thread.</summary>
    public async ValueTask<PagingHold> HoldPagingAsync(CancellationToken cancellationToken = default)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        return Held();
    }

    private PagingHold Held()
    {
        if (Volatile.Read(ref _closed) == 0) return new PagingHold(_gate);
        _gate.Release();
        throw new ObjectDisposedException(nameof(RemotePager), $"VM {Vm}: the remote pager is disposed.");
    }

    /// <summary>Paging held off by <see cref="HoldPaging"/>; dispose to let it run again.</summary>
    public readonly struct PagingHold : IDisposable
    {
        private readonly SemaphoreSlim _gate;

        internal PagingHold(SemaphoreSlim gate) => _gate = gate;

        /// <inheritdoc/>
        public void Dispose() => _gate?.Release();
    }

    private int _closed;

    /// <summary>Waits for paging in flight (serialized on the gate), then closes: later faults and holds are refused, so nothing pages into the VM's memory once this returns.</summary>
    /// <remarks>The gate itself is not disposed: a fault that gave up waiting on it may still take it, and must find the pager closed and release it.
    /// Paging's calls end with the MMU's lifetime token or their timeout, which bounds the wait.</remarks>
    public void Dispose()
    {
        _gate.Wait();
        try
        {
            if (Interlocked.Exchange(ref _closed, 1) != 0) return;
            for (int k = 1; k < _channels.Length; k++) _channels[k].Dispose();
        }
        finally
        {
            _gate.Release();
        }
    }
}
