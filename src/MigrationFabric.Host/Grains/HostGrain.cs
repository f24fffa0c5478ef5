namespace MigrationFabric.Host.Grains;

using MigrationFabric.Contracts.V1;
using MigrationFabric.Grains;
using MigrationFabric.Grains.Placement;
using MigrationFabric.Host.Agent;
using MigrationFabric.Host.Balancing;
using MigrationFabric.Host.Errors;
using MigrationFabric.Host.Hypervisor;
using MigrationFabric.Host.Migrations;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Rpc;

/// <summary>A hypervisor host: lives on the silo named like the host, so it owns that agent's VMs, budget and data plane.</summary>
[SiloNamePlacement]
public sealed class HostGrain : Grain, IHostGrain
{
    private HostAgentContext Agent => HostAgentContext.Of(GrainContext.Services);

    /// <inheritdoc />
    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        if (Agent.HostName != GetPrimaryKeyString())
            throw new InvalidOperationException($"HostGrain '{GetPrimaryKeyString()}' was placed on host agent '{Agent.HostName}'.");
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task<Host> Describe()
    {
        var agent = Agent;
        var host = new Host
        {
            Name = agent.HostName,
            Endpoint = agent.Endpoint,
            MemoryBudgetBytes = (ulong)agent.Hypervisor.BudgetBytes,
            MemoryUsedBytes = (ulong)agent.Hypervisor.ResidentBytes,
            Status = HostStatus.Active,
            MemoryReservedBytes = (ulong)agent.Hypervisor.ReservedBytes,
            HeldBytes = (ulong)agent.Held.HeldBytes,
        };
        long swapped = 0;
        foreach (var v in agent.Hypervisor.Vms.Values) swapped += v.SwappedBytes;
        host.SwapUsedBytes = (ulong)swapped;
        var names = agent.Hypervisor.Vms.Keys.ToList();
        names.Sort(StringComparer.Ordinal);
        host.Vms.AddRange(names);
        return Task.FromResult(host);
    }

    /// <inheritdoc />
    public Task<Vm> StartVm(CreateVmRequest request)
    {
        VmMemoryTerms.Validate(request, new HostRebalanceOptions().MinimumShareBytes);
        var vm = Agent.Hypervisor.Admit(request.Name, (long)request.MemoryBytes, request.Workload, StatusCode.ResourceExhausted,
            privateMemory: VmMemoryTerms.PrivateMemory(request, Agent.DataDirectory));
        VmMemoryTerms.Apply(request, vm);
        try
        {
            vm.Start();
        }
        catch (ArgumentException e)
        {
            _ = Agent.Hypervisor.RemoveAsync(request.Name);
            throw FabricException.Invalid($"workload cannot run in VM '{request.Name}': {e.Message}");
        }
        _ = VcpuFaults.WatchAsync(vm, VcpuFaultRecorder(request.Name));
        return Task.FromResult(ToVm(vm));
    }

    /// <inheritdoc />
    public Task<Vm> DescribeVm(string vm) => Task.FromResult(ToVm(Local(vm)));

    /// <inheritdoc />
    public async Task<ulong> StopVm(string vm) => (ulong)await Agent.RemoveVmAsync(vm);

    /// <inheritdoc />
    public Task SetPaused(string vm, bool paused)
    {
        var local = Local(vm);
        if (paused && !local.IsPaused) local.Mmu.Pause();
        else if (!paused && local.IsPaused) local.Mmu.Resume();
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public async Task<TimeSpan> PrepareIncoming(StartMigrationRequest request, ulong memoryBytes, Workload workload, MigrationPlan plan)
    {
        SplitCallbacks? split = null;
        if (request.Strategy == Strategy.Split)
        {
            // The VM's grain keeps the map and hears of a lost sub-host; captured here because callbacks run outside this grain's turn.
            var vmGrain = GrainFactory.GetGrain<IVmGrain>(request.Vm);
            split = new SplitCallbacks(map => vmGrain.SaveMemoryMap(request.MigrationId, map), (host, pages, message) => vmGrain.ReportMemoryLost(request.MigrationId, host, pages, message));
        }
        var (incoming, preallocatable) = IncomingSetup.Prepare(Agent, request, memoryBytes, workload, plan, split, VcpuFaultRecorder(request.Vm));
        if (Agent.Hypervisor.Find(request.Vm) is { } local) VmMemoryTerms.Apply(plan.ReservationBytes, plan.Weight, local);
        if (!Agent.PreallocateIncoming || !preallocatable) return TimeSpan.Zero;
        try
        {
            // Before the source starts, as QEMU's -mem-prealloc: the page stream then copies into memory that is already there.
            // An abort meanwhile (the scheduler gave up, the VM was removed) stops it between chunks.
            using var abandoned = new CancellationTokenSource();
            _ = incoming.Completion.ContinueWith(_ =>
            {
                try { abandoned.Cancel(); }
                catch (ObjectDisposedException) { /* the preallocation ended long before the migration did */ }
            }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            return await Agent.Preallocate(incoming, abandoned.Token).ConfigureAwait(false) ? incoming.Preallocation : TimeSpan.Zero;
        }
        catch (Exception e) when (e is InsufficientMemoryException or InvalidOperationException)
        {
            // Nothing of the VM is here yet: failing the incoming migration removes its reservation (IncomingSetup), and the VM runs on at its source.
            incoming.Abort($"the destination could not preallocate the VM's memory: {e.Message}");
            throw FabricException.Exhausted($"host {Agent.HostName} could not put RAM behind VM '{request.Vm}' ({memoryBytes} bytes): {e.Message}");
        }
    }

    /// <inheritdoc />
    public Task PrepareHold(string migrationId, string vm, ulong memoryBytes, PlannedHost part)
    {
        Agent.Held.Prepare(migrationId, vm, (long)memoryBytes, part.ReserveBytes, part.Role);
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task<bool> ReleaseHold(string vm, string migrationId) => Agent.Held.ReleaseAsync(vm, migrationId.Length == 0 ? null : migrationId);

    /// <inheritdoc />
    public Task<HostRoom> Room()
    {
        var agent = Agent;
        return Task.FromResult(new HostRoom(agent.HostName, agent.Endpoint, agent.Hypervisor.BudgetBytes, agent.Hypervisor.FreeBytes));
    }

    /// <inheritdoc />
    public Task StartOutgoing(StartMigrationRequest request, MigrationPlan plan)
    {
        var local = Local(request.Vm);
        Agent.Coordinator.Start(request, local, plan);
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task<bool> CancelOutgoing(string migrationId, string reason) => Task.FromResult(Agent.Coordinator.Cancel(migrationId, reason));

    /// <inheritdoc />
    public Task<bool> RunsOutgoing(string migrationId) => Task.FromResult(Agent.Coordinator.IsRunning(migrationId));

    /// <inheritdoc />
    public Task<WorkloadSamples> Throughput(string vm)
    {
        var local = Local(vm);
        var samples = local.Workload?.Timeline.Snapshot() ?? [];
        return Task.FromResult(new WorkloadSamples(local.WorkloadStartedAt, samples.Select(s => s.Elapsed.Ticks).ToArray(), samples.Select(s => s.PerSecond).ToArray()));
    }

    /// <inheritdoc />
    public Task<RebalanceMemoryResponse> RebalanceMemory(bool dryRun) => Task.FromResult(new HostMemoryRebalance(Agent.Hypervisor).Rebalance(dryRun));

    /// <summary>Records a stopped vCPU of <paramref name="vm"/> here on the VM's grain, retried while a silo dies; captured now because it runs outside this grain's turn.</summary>
    private Func<string, Task> VcpuFaultRecorder(string vm)
    {
        var vmGrain = GrainFactory.GetGrain<IVmGrain>(vm);
        string host = Agent.HostName;
        return error => GrainCallRetry.RunAsync(() => vmGrain.ReportVcpuFault(host, error));
    }

    private LocalVm Local(string vm) =>
        Agent.Hypervisor.Find(vm) ?? throw FabricException.NotFound($"VM '{vm}' does not run on host '{Agent.HostName}'.");

    private Vm ToVm(LocalVm local)
    {
        var vm = new Vm
        {
            Name = local.Name,
            Host = Agent.HostName,
            MemoryBytes = (ulong)local.MemoryBytes,
            ResidentBytes = (ulong)local.ResidentBytes,
            SwappedBytes = (ulong)local.SwappedBytes,
            BalloonedBytes = (ulong)local.BalloonedBytes,
            ShareBytes = (ulong)(local.Pager is not null ? local.ShareBytes : Agent.Hypervisor.ReservedFor(local.Name)),
            Workload = local.WorkloadSpec,
            State = local.IsPaused ? VmState.Paused : VmState.Running,
            ReservationBytes = (ulong)local.ReservationBytes,
            Weight = local.Weight,
        };
        // Said by the host itself, so a stop or a loss shows even while its report to the VM's grain has not landed.
        if (VcpuFaults.Describe(local.Run) is { Length: > 0 } stopped)
        {
            vm.State = VmState.Faulted;
            vm.VcpuError = stopped;
        }
        if (Agent.Attachments.Find<SplitVm>(local) is { } split)
        {
            vm.RemoteShares.AddRange(split.RemoteShares());
            foreach (var share in vm.RemoteShares) vm.RemoteBytes += share.Bytes;
            if (split.Main.IsResumed)
            {
                var errors = new List<string>();
                for (int k = 0; k < split.SubHosts.Count; k++)
                {
                    if (split.Main.Pager.LossOf(k) is not { } lost) continue;
                    errors.Add(VmGrain.LossMessage(split.SubHosts[k].Host, lost.PagesLost, lost.Message));
                    vm.LostBytes += (ulong)(lost.PagesLost * Page.Size);
                }
                vm.MemoryError = string.Join(" ", errors);
            }
        }
        return vm;
    }
}
