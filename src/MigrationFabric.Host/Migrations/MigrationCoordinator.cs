namespace MigrationFabric.Host.Migrations;

using System.Collections.Concurrent;
using System.Diagnostics;
using Google.Protobuf.WellKnownTypes;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Grains;
using MigrationFabric.Host.Agent;
using MigrationFabric.Host.Grains;
using MigrationFabric.Host.Hypervisor;
using MigrationFabric.Memory.Integrity;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.MultiHost;
using MigrationFabric.Migration.PrivateMemory;
using MigrationFabric.Migration.Reporting;
using MigrationFabric.Migration.Strategies;
using MigrationFabric.Host.Telemetry;
using ApiMigration = MigrationFabric.Contracts.V1.Migration;
using ApiPhase = MigrationFabric.Contracts.V1.MigrationPhase;
using MigrationReport = MigrationFabric.Contracts.V1.MigrationReport;
using LibPhase = MigrationFabric.Migration.Reporting.MigrationPhase;

/// <summary>Runs, on the source host, the migrations of VMs that leave it: the strategy, progress into the session grain, and the ending.</summary>
public sealed class MigrationCoordinator(HostAgentContext agent, Func<IGrainFactory> grains) : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, Running> _running = new(StringComparer.Ordinal);

    private sealed class Running(CancellationTokenSource cancel)
    {
        public CancellationTokenSource Cancel { get; } = cancel;
        public string? Reason { get; set; }
        public Task Task { get; set; } = Task.CompletedTask;
    }

    /// <summary>How long a split watches the guest's accesses before it plans which pages go to the main (SplitOptions.HotWindow): 200 ms, two demand-monitor epochs.</summary>
    public static readonly TimeSpan SplitHotWindow = TimeSpan.FromMilliseconds(200);

    /// <summary>How long a completed migration waits for its workload to recover at the destination before its report is final (HostAgentOptions.RecoveryWindow).</summary>
    public RecoveryWatchOptions Recovery { get; init; } = new();

    /// <summary>True while migration <paramref name="migrationId"/> runs here.</summary>
    public bool IsRunning(string migrationId) => _running.ContainsKey(migrationId);

    /// <summary>Starts moving <paramref name="vm"/> in the background (the request is validated and the destination prepared).</summary>
    public void Start(StartMigrationRequest request, LocalVm vm, MigrationPlan plan)
    {
        var strategy = StrategyCatalog.Create(request, plan, agent.DataChannel);
        if (strategy is Split split)
        {
            // The demand monitor takes the access bits it samples: split's hot/cold plan reads what it saw too. Nothing else
            // harvests the bits here, so the plan takes its own window: the main gets what the guest touched in it.
            split.Options.RecentAccess ??= vm.Demand.RecentAccess;
            if (split.Options.HotWindow == TimeSpan.Zero) split.Options.HotWindow = SplitHotWindow;
        }
        var running = new Running(new CancellationTokenSource());
        if (!_running.TryAdd(request.MigrationId, running))
            throw new InvalidOperationException($"migration {request.MigrationId} already runs on host {agent.HostName}.");
        var parent = Activity.Current?.Context ?? default;
        running.Task = Task.Run(() => RunAsync(request, vm, plan, strategy, running, parent));
    }

    /// <summary>Cancels a running migration (before switch-over the VM stays here untouched); false when it does not run here.</summary>
    public bool Cancel(string migrationId, string reason)
    {
        if (!_running.TryGetValue(migrationId, out var running)) return false;
        running.Reason = reason;
        running.Cancel.Cancel();
        return true;
    }

    private async Task RunAsync(StartMigrationRequest request, LocalVm vm, MigrationPlan plan, MigrationStrategy strategy, Running running,
        ActivityContext parent)
    {
        using var activity = FabricTelemetry.ActivitySource.StartActivity("fabric migration", ActivityKind.Internal, parent);
        activity?.SetTag("migration.id", request.MigrationId).SetTag("vm", request.Vm).SetTag("strategy", StrategyCatalog.NameOf(request.Strategy))
            .SetTag("source", agent.HostName).SetTag("destination", request.Destination);
        var factory = grains();
        var session = factory.GetGrain<IMigrationSessionGrain>(request.MigrationId);
        var feed = new ProgressFeed();
        var pump = PumpProgressAsync(feed, session, plan);
        // A split VM moving again: its pages are read at this main wherever they live (here or on its sub-hosts).
        var split = agent.Attachments.Find<SplitVm>(vm);
        using var splitReader = split is { Main.IsResumed: true } ? new SplitSourceReader(request.Vm, vm.Memory, split.Main.Pager) : null;
        var job = new MigrationJob
        {
            MigrationId = request.MigrationId,
            Vm = request.Vm,
            Memory = vm.Memory,
            Mmu = vm.Mmu,
            CaptureDeviceState = vm.CaptureDeviceState,
            Destination = new Uri(plan.Destination.Endpoint),
            // A VM in private memory is read wherever each page lives (share or swap), never paged in to be sent.
            PageReader = vm.Pager is { } pager ? new PrivateMemoryReader(pager) : splitReader,
            LocalPages = agent.Pages,
            LocalAddress = new Uri(agent.Endpoint),
            Progress = feed,
            DestinationName = request.Destination,
        };
        ApiPhase phase;
        string error = "";
        MigrationReport? apiReport = null;
        string newHost = "";
        try
        {
            var report = await strategy.RunAsync(job, running.Cancel.Token).ConfigureAwait(false);
            // The source's memory stays as it was at switch-over (paused), so its digest is the switch-over digest.
            ulong digest = await MigrationFabric.Migration.Verification.VmDigest.OfMemoryAsync(vm.Memory, job.PageReader, cancellationToken: CancellationToken.None).ConfigureAwait(false);
            phase = ApiPhase.Completed;
            // The report's recovery time needs the destination's workload back at 90% (or the window passed): wait for it, bounded.
            var destinationHost = factory.GetGrain<IHostGrain>(request.Destination);
            var after = await RecoveryWatch.ObserveAsync(() => destinationHost.Throughput(request.Vm),
                ReportMapper.Baseline(report, vm.Workload?.Timeline, vm.WorkloadStartedAt), report.ResumedAt, Recovery, running.Cancel.Token).ConfigureAwait(false);
            apiReport = ReportMapper.Report(report, digest, vm.Workload?.Timeline, vm.WorkloadStartedAt, after);
            DestinationMapper.NameReport(apiReport, plan);
            if (plan.DestinationPreallocation > TimeSpan.Zero) apiReport.DestinationPreallocation = Google.Protobuf.WellKnownTypes.Duration.FromTimeSpan(plan.DestinationPreallocation);
            newHost = request.Destination;
        }
        catch (OperationCanceledException) when (running.Cancel.IsCancellationRequested)
        {
            phase = ApiPhase.Cancelled;
            error = $"{running.Reason ?? "cancelled"} before switch-over; the VM keeps running on '{agent.HostName}'.";
        }
        catch (MigrationDeadlineExceededException e)
        {
            phase = ApiPhase.Failed;
            error = $"DEADLINE_EXCEEDED: {e.Message}";
        }
        catch (MigrationFailedException e)
        {
            phase = ApiPhase.Failed;
            error = ReportMapper.FailureMessage(e);
            apiReport = ReportMapper.FailedReport(e);
        }
        catch (MigrationIntegrityException e)
        {
            // After switch-over the VM runs at the destination, so it stays there; the report says loudly it must not be trusted.
            phase = ApiPhase.Failed;
            error = $"ABORTED: {e.Message}";
            apiReport = new MigrationReport { Integrity = new IntegrityCheck { MismatchedPages = (ulong)e.MismatchedCount } };
            apiReport.Integrity.FirstMismatches.AddRange(e.MismatchedPages.Take(16).Select(p => (ulong)p));
            newHost = request.Destination;
        }
        catch (Exception e)
        {
            bool switchedOver = vm.Mmu.IsPaused;
            phase = ApiPhase.Failed;
            error = $"{e.GetType().Name}: {e.Message} ({(switchedOver ? $"the VM had switched over to '{request.Destination}'" : $"the VM keeps running on '{agent.HostName}'")}).";
            if (switchedOver) newHost = request.Destination;
        }
        error = DestinationMapper.NameHosts(error, plan);
        activity?.SetTag("outcome", phase.ToString());
        if (phase != ApiPhase.Completed) activity?.SetStatus(ActivityStatusCode.Error, error);
        feed.Complete();
        await pump.ConfigureAwait(false);
        try
        {
            // The VM's record and the source's copy are settled before the session says it ended, so a watcher
            // that sees the end sees the VM where it now runs.
            var vmGrain = factory.GetGrain<IVmGrain>(request.Vm);
            if (request.Strategy == Strategy.Split && newHost.Length > 0)
                await Retry(() => vmGrain.EndSplitMigration(request.MigrationId, newHost, [.. plan.Others.Select(o => o.Host)])).ConfigureAwait(false);
            else await Retry(() => vmGrain.EndMigration(request.MigrationId, newHost)).ConfigureAwait(false);
            if (newHost.Length > 0) await agent.RemoveVmAsync(request.Vm).ConfigureAwait(false);
            // A split VM that moved whole: its old sub-hosts' parts are not needed any more.
            if (split is not null && newHost.Length > 0 && request.Strategy != Strategy.Split)
                await ReleaseOldPartsAsync(factory, request.Vm, split).ConfigureAwait(false);
            // Intermediates are done once the destination gathered everything (or the migration ended badly); sub-hosts
            // keep the split VM's pages unless it did not switch over.
            if (request.Strategy == Strategy.ScatterGather || newHost.Length == 0)
                await ReleaseHoldsAsync(factory, request, plan).ConfigureAwait(false);
            await Ended(session, phase, error, apiReport).ConfigureAwait(false);
        }
        finally
        {
            _running.TryRemove(request.MigrationId, out _);
            running.Cancel.Dispose();
        }

        async Task<ApiMigration> Ended(IMigrationSessionGrain s, ApiPhase phase, string error, MigrationReport? report)
        {
            var m = (await Retry(s.Describe).ConfigureAwait(false)).Clone();
            m.Phase = phase;
            m.Error = error;
            m.EndedAt = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow);
            m.Report = report;
            FabricTelemetry.MigrationsEnded.Add(1, new KeyValuePair<string, object?>("outcome", phase.ToString()),
                new KeyValuePair<string, object?>("strategy", StrategyCatalog.NameOf(request.Strategy)));
            await Retry(async () => { await s.Finish(m).ConfigureAwait(false); return true; }).ConfigureAwait(false);
            return m;
        }
    }

    /// <summary>A record that must land (a migration's ending, a lost sub-host) even when the grain's silo just died: see <see cref="GrainCallRetry"/>.</summary>
    internal static Task<T> Retry<T>(Func<Task<T>> call) => GrainCallRetry.RunAsync(call);

    /// <summary><see cref="Retry{T}"/> for a call without a result.</summary>
    internal static Task Retry(Func<Task> call) => GrainCallRetry.RunAsync(call);

    private static async Task PumpProgressAsync(ProgressFeed feed, IMigrationSessionGrain session, MigrationPlan plan)
    {
        await Task.Yield();
        try
        {
            await foreach (var p in feed.ReadAllAsync().ConfigureAwait(false))
            {
                // The ending is written by Finish with the report; an early COMPLETED/FAILED phase would pre-empt it.
                if (p.Phase is LibPhase.Completed or LibPhase.Failed) continue;
                await session.Report(DestinationMapper.Event(p, plan)).ConfigureAwait(false);
            }
        }
        catch (Exception)
        {
            // Progress is advisory; the ending is recorded by Finish regardless.
        }
    }

    private static Task ReleaseOldPartsAsync(IGrainFactory factory, string vm, SplitVm split) =>
        Task.WhenAll(split.SubHosts.Select(async part =>
        {
            try
            {
                await factory.GetGrain<IHostGrain>(part.Host).ReleaseHold(vm, "").ConfigureAwait(false);
            }
            catch (Exception)
            {
                // A dead sub-host holds nothing any more.
            }
        }));

    private static Task ReleaseHoldsAsync(IGrainFactory factory, StartMigrationRequest request, MigrationPlan plan) =>
        Task.WhenAll(plan.Others.Select(async part =>
        {
            try
            {
                await factory.GetGrain<IHostGrain>(part.Host).ReleaseHold(request.Vm, request.MigrationId).ConfigureAwait(false);
            }
            catch (Exception)
            {
                // A dead sub-host or intermediate holds nothing any more.
            }
        }));

    /// <summary>Cancels every running migration and waits for them to end.</summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var r in _running.Values)
        {
            r.Reason = "the host agent is stopping";
            r.Cancel.Cancel();
        }
        foreach (var r in _running.Values)
        {
            try { await r.Task.ConfigureAwait(false); } catch (Exception) { }
        }
    }
}
