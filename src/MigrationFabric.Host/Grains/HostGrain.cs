namespace MigrationFabric.Host.Grains;

using MigrationFabric.Contracts.V1;
using MigrationFabric.Grains;
using MigrationFabric.Grains.Placement;
using MigrationFabric.Host.Agent;
using MigrationFabric.Host.Balancing;
using MigrationFabric.Host.Errors;
using MigrationFabric.Host.Hypervisor;
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
        };
        var names = agent.Hypervisor.Vms.Keys.ToList();
        names.Sort(StringComparer.Ordinal);
        host.Vms.AddRange(names);
        return Task.FromResult(host);
    }

    /// <inheritdoc />
    public Task<Vm> StartVm(CreateVmRequest request)
    {
        var vm = Agent.Hypervisor.Admit(request.Name, (long)request.MemoryBytes, request.Workload, StatusCode.ResourceExhausted);
        try
        {
            vm.Start();
        }
        catch (ArgumentException e)
        {
            _ = Agent.Hypervisor.RemoveAsync(request.Name);
            throw FabricException.Invalid($"workload cannot run in VM '{request.Name}': {e.Message}");
        }
        return Task.FromResult(ToVm(vm));
    }

    /// <inheritdoc />
    public Task<Vm> DescribeVm(string vm) => Task.FromResult(ToVm(Local(vm)));

    /// <inheritdoc />
    public async Task<ulong> StopVm(string vm) => (ulong)await Agent.Hypervisor.RemoveAsync(vm);

    /// <inheritdoc />
    public Task SetPaused(string vm, bool paused)
    {
        var local = Local(vm);
        if (paused && !local.IsPaused) local.Mmu.Pause();
        else if (!paused && local.IsPaused) local.Mmu.Resume();
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task PrepareIncoming(string migrationId, string vm, ulong memoryBytes, Workload workload)
    {
        var agent = Agent;
        var local = agent.Hypervisor.Admit(vm, (long)memoryBytes, workload, StatusCode.FailedPrecondition);
        IncomingMigration incoming;
        try
        {
            incoming = new IncomingMigration(migrationId, vm, local.Memory, local.Mmu, new IncomingMigrationOptions
            {
                Resume = (deviceState, _) =>
                {
                    local.Resume(deviceState);
                    return Task.CompletedTask;
                },
            });
            agent.Pages.Accept(incoming);
        }
        catch
        {
            _ = agent.Hypervisor.RemoveAsync(vm);
            throw;
        }
        var hypervisor = agent.Hypervisor;
        // A failed or aborted migration leaves nothing behind here: the VM keeps running at its source.
        incoming.Completion.ContinueWith(t =>
        {
            if (!t.IsCompletedSuccessfully && ReferenceEquals(hypervisor.Find(vm), local)) _ = hypervisor.RemoveAsync(vm);
        }, TaskScheduler.Default);
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task StartOutgoing(StartMigrationRequest request, string destinationEndpoint)
    {
        var local = Local(request.Vm);
        Agent.Coordinator.Start(request, local, destinationEndpoint);
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

    private LocalVm Local(string vm) =>
        Agent.Hypervisor.Find(vm) ?? throw FabricException.NotFound($"VM '{vm}' does not run on host '{Agent.HostName}'.");

    private Vm ToVm(LocalVm local) => new()
    {
        Name = local.Name,
        Host = Agent.HostName,
        MemoryBytes = (ulong)local.MemoryBytes,
        ResidentBytes = (ulong)local.ResidentBytes,
        Workload = local.WorkloadSpec,
        State = local.IsPaused ? VmState.Paused : VmState.Running,
    };
}
