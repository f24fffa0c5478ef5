using MigrationFabric.Contracts.V1;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Migration.Codec;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Rpc;
using MigrationFabric.Rpc.Client;

namespace MigrationFabric.Migration.MultiHost;

/// <summary>The destination of a scatter-gather migration: resumes with every page Remote, gathers them from the intermediates in the background and faults a page from whichever intermediate holds it.</summary>
/// <remarks>
/// Pages are installed through the incoming migration's post-copy path, so the integrity check and the "all arrived"
/// wait work as in post-copy. An intermediate failing a call is the loss of the pages only it held: the incoming
/// migration fails with <see cref="MigrationSourceLostException"/> naming the intermediate and how many pages were still missing.
/// After switch-over the source holds nothing this side needs, so its streams breaking (its run fails when an intermediate
/// dies, often before the gather meets the dead intermediate) waits for the gather's end: an intermediate lost meanwhile is
/// what the migration fails with; with every page gathered it fails because the source cannot run the integrity check.
/// </remarks>
public sealed class GatherDestination : IPageFaultHandler, IDisposable
{
    private const int GatherBatch = 256;
    private readonly RpcChannel[] _channels;
    private readonly Uri[] _intermediates;
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource<Exception> _sourceLost = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task _gather = Task.CompletedTask;
    private int _gatherEnded;
    private int _resolving;

    /// <summary>Prepares to receive VM <paramref name="vm"/> into <paramref name="memory"/> (vCPUs on <paramref name="mmu"/>) from <paramref name="intermediates"/> (in the source's order).</summary>
    public GatherDestination(string migrationId, string vm, GuestMemory memory, SoftwareMmu mmu, IReadOnlyList<Uri> intermediates, IncomingMigrationOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(intermediates);
        if (intermediates.Count == 0) throw new ArgumentException("scatter-gather needs at least one intermediate.", nameof(intermediates));
        _intermediates = [.. intermediates];
        options ??= new IncomingMigrationOptions();
        _channels = [.. _intermediates.Select(a => new RpcChannel(a, options.RemotePagesChannel ?? new RpcChannelOptions()))];
        var resume = options.Resume;
        options.Resume = async (state, ct) =>
        {
            mmu.FaultHandler = this;
            if (resume is not null) await resume(state, ct).ConfigureAwait(false);
            _gather = Task.Run(GatherAllAsync);
        };
        Incoming = new IncomingMigration(migrationId, vm, memory, mmu, options) { SourceLostInPostCopy = OnSourceLost };
    }

    /// <summary>The incoming migration to accept on the destination's PagesService.</summary>
    public IncomingMigration Incoming { get; }

    /// <summary>Completes when the background gather ends (every page here, or an intermediate lost).</summary>
    public Task Gathered => _gather;

    /// <summary>Completes with the cause if the source's page streams broke after switch-over; the migration fails for it only once the gather has ended.</summary>
    public Task<Exception> SourceLost => _sourceLost.Task;

    /// <inheritdoc/>
    public async ValueTask ResolveAsync(PageFault fault, CancellationToken cancellationToken)
    {
        if (fault.Residency != PageResidency.Remote)
            throw new PageFaultException(fault.Page, $"scatter-gather resolves Remote pages only; this page is {fault.Residency}.");
        // Counted before the stop check so Dispose can wait for a fault already past it (a vCPU stopped meanwhile leaves its handler running).
        Interlocked.Increment(ref _resolving);
        try
        {
            if (_stop.IsCancellationRequested) throw new PageFaultException(fault.Page, $"VM {Incoming.Vm}: the gatherer is disposed.");
            await ResolveCountedAsync(fault, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Interlocked.Decrement(ref _resolving);
        }
    }

    private async ValueTask ResolveCountedAsync(PageFault fault, CancellationToken cancellationToken)
    {
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        int k = ScatterPlan.IntermediateOf(fault.Page.Value, _channels.Length);
        var request = new RemotePagesRequest { Vm = Incoming.Vm, Checksum = PageChecksums.ToWire(Incoming.ChecksumInUse) };
        request.PageNumbers.Add((ulong)fault.Page.Value);
        var response = await FetchAsync(k, request, cancellationToken).ConfigureAwait(false)
            ?? throw new PageFaultException(fault.Page, $"intermediate {_intermediates[k]} is lost; the page was only there.");
        Install(response, fault.Page.Value);
        Incoming.RecordFault(start);
    }

    private void Install(RemotePagesResponse response, long faulted)
    {
        var reader = new PageBatchReader(response.Batch ?? new PageBatch(), Incoming.Memory.PageCount, Incoming.ChecksumInUse);
        while (reader.TryRead(out var entry)) Incoming.InstallRemote(entry, mustBeResident: entry.Page == faulted);
    }

    private async Task<RemotePagesResponse?> FetchAsync(int k, RemotePagesRequest request, CancellationToken cancellationToken)
    {
        try
        {
            return await _channels[k].AsyncUnaryCall(PagesContract.RemotePages, request,
                new CallOptions(CancellationToken: cancellationToken).WithTimeout(Incoming.Options.RemoteFaultTimeout)).ResponseAsync.ConfigureAwait(false);
        }
        catch (Exception e) when (e is RpcException or IOException or HttpRequestException || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            Incoming.PagesLost(new IOException($"intermediate {_intermediates[k]} is lost: {e.Message}", e));
            return null;
        }
    }

    private async Task GatherAllAsync()
    {
        var tasks = new Task[_channels.Length];
        for (int k = 0; k < tasks.Length; k++)
        {
            int index = k;
            tasks[k] = Task.Run(() => GatherFromAsync(index));
        }
        try
        {
            await Task.WhenAll(tasks).ConfigureAwait(false);
        }
        finally
        {
            // Paired with OnSourceLost: each side publishes, then looks at the other's, so one of them sees both.
            Interlocked.Exchange(ref _gatherEnded, 1);
            if (_sourceLost.Task.IsCompleted) ConcludeSourceLost(_sourceLost.Task.Result);
        }
    }

    private void OnSourceLost(Exception cause)
    {
        if (!_sourceLost.TrySetResult(cause)) return;
        if (Volatile.Read(ref _gatherEnded) == 1) ConcludeSourceLost(cause);
    }

    private void ConcludeSourceLost(Exception cause)
    {
        // Already failed (an intermediate named) or verified, or stopped by Dispose: nothing to add.
        if (Incoming.IsFinished || _stop.IsCancellationRequested) return;
        if (Incoming.PagesRemaining == 0)
            Incoming.Fail(new IOException($"migration {Incoming.MigrationId}: the source was lost after switch-over ({cause.Message}); every page was gathered, but the integrity check could not run.", cause));
        else
            Incoming.PagesLost(cause);
    }

    private async Task GatherFromAsync(int k)
    {
        var memory = Incoming.Memory;
        var request = new RemotePagesRequest { Vm = Incoming.Vm, Checksum = PageChecksums.ToWire(Incoming.ChecksumInUse) };
        for (long p = 0; p < memory.PageCount && !_stop.IsCancellationRequested; p++)
        {
            if (ScatterPlan.IntermediateOf(p, _channels.Length) == k && memory.GetResidency(p) == PageResidency.Remote) request.PageNumbers.Add((ulong)p);
            if (request.PageNumbers.Count < GatherBatch && p + 1 < memory.PageCount) continue;
            if (request.PageNumbers.Count == 0) continue;
            var response = await FetchAsync(k, request, _stop.Token).ConfigureAwait(false);
            if (response is null) return;
            Install(response, -1);
            request.PageNumbers.Clear();
        }
    }

    /// <summary>Stops gathering; returns once no gather call and no fault is installing into the memory (its owner unmaps it next).</summary>
    public void Dispose()
    {
        _stop.Cancel();
        try { _gather.Wait(TimeSpan.FromSeconds(10)); } catch (AggregateException) { }
        // A fault's fetch ends with the MMU's lifetime token, which the owner cancels before this (the vCPUs stop first).
        SpinWait.SpinUntil(() => Volatile.Read(ref _resolving) == 0, TimeSpan.FromSeconds(10));
        foreach (var c in _channels) c.Dispose();
        _stop.Dispose();
    }
}

/// <summary>Which intermediate holds a page in scatter-gather: 1 MiB blocks dealt round-robin, so each link carries an equal share.</summary>
public static class ScatterPlan
{
    /// <summary>The index of the intermediate holding <paramref name="page"/> among <paramref name="intermediates"/>.</summary>
    public static int IntermediateOf(long page, int intermediates) => (int)((page >> 8) % intermediates);
}
