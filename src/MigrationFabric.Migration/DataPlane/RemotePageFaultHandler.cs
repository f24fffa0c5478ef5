using System.Diagnostics;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Migration.Codec;
using MigrationFabric.Rpc;
using MigrationFabric.Rpc.Client;

namespace MigrationFabric.Migration.DataPlane;

/// <summary>Post-copy at the destination: a vCPU touching a page still at the source fetches it (and its neighbours) over the fault channel or RemotePages.</summary>
/// <remarks>
/// With a fault channel (the source opened one before switch-over, QEMU's postcopy-preempt shape) the faulting vCPU's
/// own thread writes the request and blocks in the socket read: the reply wakes it directly, with no HTTP/2 and no
/// thread-pool hop on either end. Without one, faults use RemotePages calls on their own HTTP/2 connection, so a
/// fault's reply never queues behind the background push's batches.
/// </remarks>
internal sealed class RemotePageFaultHandler : IPageFaultHandler, IDisposable
{
    private readonly IncomingMigration _incoming;
    private readonly RpcChannel? _channel;
    private readonly FaultChannel.FaultChannelClient? _faultChannel;
    private readonly int _prefetch;

    public RemotePageFaultHandler(IncomingMigration incoming, Uri source, int prefetch)
    {
        _incoming = incoming;
        _prefetch = prefetch;
        _faultChannel = incoming.AttachedFaultChannel;
        if (_faultChannel is null) _channel = new RpcChannel(source, incoming.Options.RemotePagesChannel ?? new RpcChannelOptions());
    }

    public ValueTask ResolveAsync(PageFault fault, CancellationToken cancellationToken)
    {
        if (_faultChannel is null) return ResolveOverRpcAsync(fault, cancellationToken);
        // Synchronous on purpose: the MMU calls this on the faulting vCPU's thread, which has nothing to do but wait.
        long start = Stopwatch.GetTimestamp();
        var request = Request(fault);
        _incoming.FaultStarted();
        try
        {
            RemotePagesResponse response;
            long sentNs;
            try { response = _faultChannel.Fetch(request, cancellationToken, out sentNs); }
            catch (FaultChannel.FaultChannelException e)
            {
                if (fault.Memory.GetResidency(fault.Page) != PageResidency.Remote) return ValueTask.CompletedTask;
                _incoming.SourceLost(e);
                throw new PageFaultException(fault.Page, $"migration {_incoming.MigrationId}: the source did not serve {fault.Page} over the fault channel: {e.Message}", e);
            }
            Install(fault, response, start, sentNs);
        }
        finally
        {
            _incoming.FaultEnded();
        }
        _incoming.RecordFault(start);
        return ValueTask.CompletedTask;
    }

    private RemotePagesRequest Request(PageFault fault)
    {
        if (_incoming.Phase == IncomingPhase.Failed)
            throw new PageFaultException(fault.Page, $"migration {_incoming.MigrationId} failed; {fault.Page} is not available.");
        var request = new RemotePagesRequest { MigrationId = _incoming.MigrationId, Vm = _incoming.Vm, Prefetch = (uint)_prefetch, Checksum = PageChecksums.ToWire(_incoming.ChecksumInUse) };
        request.PageNumbers.Add((ulong)fault.Page.Value);
        return request;
    }

    private async ValueTask ResolveOverRpcAsync(PageFault fault, CancellationToken cancellationToken)
    {
        long start = Stopwatch.GetTimestamp();
        var request = Request(fault);
        RemotePagesResponse response;
        long sentNs;
        _incoming.FaultStarted();
        try
        {
            try
            {
                sentNs = RemoteFaultSteps.NowNanoseconds();
                response = await _channel!.AsyncUnaryCall(PagesContract.RemotePages, request,
                    new CallOptions(CancellationToken: cancellationToken).WithTimeout(_incoming.Options.RemoteFaultTimeout)).ResponseAsync.ConfigureAwait(false);
            }
            catch (Exception e) when (e is RpcException or IOException or HttpRequestException)
            {
                // The background push may have delivered the page while this request was out, and the source stops
                // serving once every page has arrived: then nothing is lost, and the vCPU finds the page on its re-check.
                if (fault.Memory.GetResidency(fault.Page) != PageResidency.Remote) return;
                _incoming.SourceLost(e);
                throw new PageFaultException(fault.Page, $"migration {_incoming.MigrationId}: the source did not serve {fault.Page}: {e.Message}", e);
            }
            Install(fault, response, start, sentNs);
        }
        finally
        {
            _incoming.FaultEnded();
        }
        _incoming.RecordFault(start);
    }

    private void Install(PageFault fault, RemotePagesResponse response, long start, long sentNs)
    {
        long gotNs = RemoteFaultSteps.NowNanoseconds();
        try
        {
            var batch = response.Batch ?? new PageBatch();
            var reader = new PageBatchReader(batch, _incoming.Memory.PageCount, _incoming.ChecksumInUse);
            if (_incoming.Options.Placement is null && !_incoming.IsPreallocated) _incoming.PrefaultFreshPages(batch, PageResidency.Remote);
            bool got = false;
            while (reader.TryRead(out var entry))
            {
                bool faulted = entry.Page == fault.Page.Value;
                _incoming.InstallRemote(entry, mustBeResident: faulted);
                got |= faulted;
            }
            if (!got && fault.Memory.GetResidency(fault.Page) == PageResidency.Remote)
                throw new PageBatchFormatException($"the source's reply did not contain the faulted {fault.Page}.");
        }
        catch (Exception e) when (e is PageChecksumException or PageBatchFormatException)
        {
            _incoming.Fail(e);
            throw new PageFaultException(fault.Page, e.Message, e);
        }
        _incoming.RemoteFaultSteps.Record(RemoteFaultSteps.ToNanoseconds(start), sentNs, (long)response.ReceivedAtNs, (long)response.ReadAtNs,
            gotNs, RemoteFaultSteps.NowNanoseconds());
    }

    public void Dispose()
    {
        _channel?.Dispose();
        _faultChannel?.Dispose();
    }
}
