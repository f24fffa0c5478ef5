using MigrationFabric.Contracts.V1;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Migration.Codec;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Rpc;
using MigrationFabric.Rpc.Client;

namespace MigrationFabric.Migration.RemotePaging;

/// <summary>A split VM's main host: a vCPU touching a Remote page pages it in from the sub-host; when the main's share is full, cold pages go out to the sub-host first (remote paging).</summary>
/// <remarks>
/// Install as the main MMU's fault handler once every page the main does not hold is Remote. Paging is serialized
/// (one fault's page-out and page-in at a time) so a page is never fetched while it is being stored. Victims are
/// chosen by a clock hand over the VM (not access-aware). A sub-host that fails a call is lost: the pages only it
/// held are gone, <see cref="Lost"/> says so, and every later fault on a Remote page stops its vCPU with that error.
/// </remarks>
public sealed class RemotePager : IPageFaultHandler, IDisposable
{
    private readonly GuestMemory _memory;
    private readonly RemotePagerOptions _options;
    private readonly RpcChannel _channel;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly TaskCompletionSource<SubHostLostException> _lost = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly long[] _victims;
    private long _hand;
    private long _pageIns, _pageOuts;

    /// <summary>Pages VM <paramref name="vm"/>'s <paramref name="memory"/> (the main host's copy) to and from the sub-host at <paramref name="subHost"/>.</summary>
    public RemotePager(string vm, GuestMemory memory, Uri subHost, RemotePagerOptions options)
    {
        ArgumentException.ThrowIfNullOrEmpty(vm);
        ArgumentNullException.ThrowIfNull(memory);
        ArgumentNullException.ThrowIfNull(subHost);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate(memory.PageCount);
        Vm = vm;
        SubHost = subHost;
        _memory = memory;
        _options = options;
        _victims = new long[options.PageOutBatch];
        _channel = new RpcChannel(subHost, options.Channel ?? new RpcChannelOptions());
    }

    /// <summary>The VM.</summary>
    public string Vm { get; }

    /// <summary>The sub-host's data-plane address.</summary>
    public Uri SubHost { get; }

    /// <summary>Pages fetched from the sub-host.</summary>
    public long PageIns => Volatile.Read(ref _pageIns);

    /// <summary>Pages stored to the sub-host.</summary>
    public long PageOuts => Volatile.Read(ref _pageOuts);

    /// <summary>Completes with the loss when the sub-host fails a call; never completes while it serves.</summary>
    public Task<SubHostLostException> Lost => _lost.Task;

    /// <inheritdoc/>
    public async ValueTask ResolveAsync(PageFault fault, CancellationToken cancellationToken)
    {
        if (fault.Residency != PageResidency.Remote)
            throw new PageFaultException(fault.Page, $"the remote pager resolves Remote pages only; this page is {fault.Residency}.");
        if (_lost.Task.IsCompleted) throw new PageFaultException(fault.Page, _lost.Task.Result.Message, _lost.Task.Result);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_memory.GetResidency(fault.Page) != PageResidency.Remote) return;
            // Room first, so the share holds even while the fetched page lands.
            if (_memory.ResidentPages >= _options.BudgetPages) await PageOutAsync(fault.Page.Value, cancellationToken).ConfigureAwait(false);
            var request = new RemotePagesRequest { Vm = Vm };
            request.PageNumbers.Add((ulong)fault.Page.Value);
            var response = await CallAsync(PagesContract.RemotePages, request, fault.Page, cancellationToken).ConfigureAwait(false);
            Install(response.Batch ?? new PageBatch(), fault.Page);
        }
        finally
        {
            _gate.Release();
        }
    }

    private void Install(PageBatch batch, PageNumber faulted)
    {
        var reader = new PageBatchReader(batch, _memory.PageCount);
        bool got = false;
        while (reader.TryRead(out var entry))
        {
            if (entry.Page != faulted.Value) continue;
            var target = _memory.BeginInstall(faulted, PageResidency.Remote);
            if (target.IsEmpty) return;
            try { entry.DecodeInto(target); }
            catch { _memory.AbortInstall(faulted, PageResidency.Remote); throw; }
            _memory.CompleteInstall(faulted, PageResidency.Remote);
            got = true;
        }
        if (!got) throw new PageFaultException(faulted, $"sub-host {SubHost} did not return the faulted page.");
        Interlocked.Increment(ref _pageIns);
    }

    private async Task PageOutAsync(long faulted, CancellationToken cancellationToken)
    {
        int n = ChooseVictims(faulted);
        if (n == 0) return;
        var builder = new PageBatchBuilder(n);
        for (int i = 0; i < n; i++) builder.AddPage(_victims[i], _memory.GetPageBytes(_victims[i]));
        using var encoded = builder.Build(0);
        try
        {
            await CallAsync(PagesContract.StorePages, new StorePagesRequest { Vm = Vm, Batch = encoded.Batch }, faulted, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            for (int i = 0; i < n; i++) _memory.CancelEviction(_victims[i], 1);
            throw;
        }
        for (int i = 0; i < n; i++) _memory.CompleteEviction(_victims[i], 1, PageResidency.Remote);
        Interlocked.Add(ref _pageOuts, n);
    }

    /// <summary>Moves up to a batch of Resident pages (not <paramref name="faulted"/>) to Evicting, clock order.</summary>
    private int ChooseVictims(long faulted)
    {
        int n = 0;
        long pages = _memory.PageCount;
        for (long scanned = 0; scanned < pages && n < _victims.Length; scanned++)
        {
            long p = _hand;
            _hand = p + 1 == pages ? 0 : p + 1;
            if (p == faulted || _memory.GetResidency(p) != PageResidency.Resident) continue;
            if (_memory.BeginEviction(p, 1) == 1) _victims[n++] = p;
        }
        return n;
    }

    private async Task<TResponse> CallAsync<TRequest, TResponse>(Method<TRequest, TResponse> method, TRequest request, PageNumber page, CancellationToken cancellationToken)
        where TRequest : class, Google.Protobuf.IMessage<TRequest>, new() where TResponse : class, Google.Protobuf.IMessage<TResponse>, new()
    {
        try
        {
            return await _channel.AsyncUnaryCall(method, request, new CallOptions(CancellationToken: cancellationToken).WithTimeout(_options.Timeout))
                .ResponseAsync.ConfigureAwait(false);
        }
        catch (Exception e) when (e is RpcException or IOException or HttpRequestException || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            var lost = new SubHostLostException(Vm, SubHost, _memory.CountOf(PageResidency.Remote), e);
            _lost.TrySetResult(lost);
            throw new PageFaultException(page, lost.Message, lost);
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _channel.Dispose();
        _gate.Dispose();
    }
}
