namespace MigrationFabric.Host.Migrations;

using MigrationFabric.Contracts.V1;
using MigrationFabric.Host.Agent;
using MigrationFabric.Host.Hypervisor;
using MigrationFabric.Memory.Swap;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.MultiHost;
using MigrationFabric.Migration.PrivateMemory;
using MigrationFabric.Migration.RemotePaging;
using MigrationFabric.Rpc;

/// <summary>What the destination host of a split reports back to the VM's grain: its memory map as it changes, and a sub-host lost after switch-over.</summary>
/// <param name="MapChanged">Called with the serialized map (coalesced; see <see cref="MemoryMapKeeper"/>).</param>
/// <param name="SubHostLost">Called once with the lost sub-host's name, the pages lost and the message.</param>
public sealed record SplitCallbacks(Func<byte[], Task> MapChanged, Func<string, long, string, Task> SubHostLost);

/// <summary>Prepares the receiving end of a migration on its destination host, by strategy: the VM in RAM (plain, devirtualizing), in private virtual memory (VMemDirect, naive swap), as a split's main host, or as a scatter-gather's gatherer.</summary>
public static class IncomingSetup
{
    /// <summary>Admits the VM (the plan's reservation; FAILED_PRECONDITION when there is no room) and expects its pages; a failed or aborted migration leaves nothing here.</summary>
    /// <param name="vcpuStopped">Called with <see cref="VcpuFaults.Describe(Task)"/> if the VM's vCPUs, once resumed here, stop with an error (any cause).</param>
    /// <returns>The incoming migration, and whether it holds fixed RAM to preallocate: the whole VM, or VMemDirect's share.</returns>
    public static (IncomingMigration Incoming, bool Preallocatable) Prepare(HostAgentContext agent, StartMigrationRequest request, ulong memoryBytes, Workload workload, MigrationPlan plan, SplitCallbacks? split,
        Func<string, Task>? vcpuStopped = null)
    {
        string id = request.MigrationId, vm = request.Vm;
        var hypervisor = agent.Hypervisor;
        LocalVm local;
        IncomingMigration incoming;
        // A split main's share and plain swap are paged by design; VMemDirect's share is fixed RAM, and the other destinations hold every page in RAM.
        bool preallocatable = request.Strategy is not (Strategy.NaiveSwap or Strategy.Split);
        var attachments = new List<IDisposable>();
        var resume = (LocalVm l) => new Func<ReadOnlyMemory<byte>, CancellationToken, Task>((state, ct) =>
        {
            l.Resume(state);
            if (vcpuStopped is not null) _ = VcpuFaults.WatchAsync(l, vcpuStopped);
            return Task.CompletedTask;
        });
        switch (request.Strategy)
        {
            case Strategy.VmemDirect or Strategy.NaiveSwap:
            {
                var mode = request.Strategy == Strategy.NaiveSwap ? PagingMode.Naive : request.Limits.VmemPagingMethod == 2 ? PagingMode.AsyncMethod2 : PagingMode.AsyncMethod1;
                local = hypervisor.Admit(vm, (long)memoryBytes, workload, StatusCode.FailedPrecondition, privateMemory: new PrivateVirtualMemoryOptions
                {
                    SharePages = plan.SharePages,
                    Mode = mode,
                    SwapFilePath = Path.Combine(agent.DataDirectory, $"{vm}-{id}.swap"),
                });
                try
                {
                    var placement = new PrivateMemoryPlacement(local.Pager!);
                    attachments.Add(placement);
                    incoming = new IncomingMigration(id, vm, local.Memory, local.Mmu, new IncomingMigrationOptions
                    {
                        Resume = resume(local),
                        Placement = placement,
                    });
                }
                catch
                {
                    _ = agent.RemoveVmAsync(vm);
                    throw;
                }
                break;
            }
            case Strategy.Split:
            {
                local = hypervisor.Admit(vm, (long)memoryBytes, workload, StatusCode.FailedPrecondition, reserveBytes: plan.Destination.ReserveBytes);
                try
                {
                    var keeper = split is null ? null : new MemoryMapKeeper(split.MapChanged);
                    SplitVm? splitVm = null;
                    var main = new SplitMainHost(id, vm, local.Memory, local.Mmu, new RemotePagerOptions
                    {
                        BudgetPages = plan.SharePages,
                        PageOutBatch = MigrationPlanner.MainPageOutBatch,
                        SubHostBudgetPages = [.. plan.Others.Select(o => o.PagesPlanned + MigrationPlanner.MainPageOutBatch)],
                        MapChanged = keeper is null ? null : (map, _) => { keeper.Changed(map); return ValueTask.CompletedTask; },
                    }, new IncomingMigrationOptions
                    {
                        Resume = (state, ct) =>
                        {
                            var pager = splitVm!.Main.Pager;
                            keeper?.Changed(pager.Map);
                            if (split is not null)
                                // Retried: the VM's grain may have lived on the very sub-host that died, and the loss must not go unrecorded.
                                _ = pager.Lost.ContinueWith(t => MigrationCoordinator.Retry(() => split.SubHostLost(splitVm.NameOf(t.Result), t.Result.PagesLost, t.Result.Message)),
                                    CancellationToken.None, TaskContinuationOptions.OnlyOnRanToCompletion, TaskScheduler.Default).Unwrap();
                            return resume(local)(state, ct);
                        },
                    });
                    splitVm = new SplitVm(main, plan.Others);
                    incoming = main.Incoming;
                    attachments.Add(splitVm);
                    if (keeper is not null) attachments.Add(keeper);
                }
                catch
                {
                    _ = agent.RemoveVmAsync(vm);
                    throw;
                }
                break;
            }
            case Strategy.ScatterGather:
            {
                local = hypervisor.Admit(vm, (long)memoryBytes, workload, StatusCode.FailedPrecondition);
                try
                {
                    var gather = new GatherDestination(id, vm, local.Memory, local.Mmu, [.. plan.Others.Select(o => new Uri(o.Endpoint))],
                        new IncomingMigrationOptions { Resume = resume(local) });
                    incoming = gather.Incoming;
                    attachments.Add(gather);
                }
                catch
                {
                    _ = agent.RemoveVmAsync(vm);
                    throw;
                }
                break;
            }
            default:
                local = hypervisor.Admit(vm, (long)memoryBytes, workload, StatusCode.FailedPrecondition);
                try
                {
                    incoming = new IncomingMigration(id, vm, local.Memory, local.Mmu, new IncomingMigrationOptions { Resume = resume(local) });
                }
                catch
                {
                    _ = agent.RemoveVmAsync(vm);
                    throw;
                }
                break;
        }
        foreach (var a in attachments) agent.Attachments.Attach(local, a);
        try
        {
            agent.Pages.Accept(incoming);
        }
        catch
        {
            _ = agent.RemoveVmAsync(vm);
            throw;
        }
        // A failed or aborted migration leaves nothing behind here: the VM keeps running at its source.
        incoming.Completion.ContinueWith(t =>
        {
            if (!t.IsCompletedSuccessfully && ReferenceEquals(hypervisor.Find(vm), local)) _ = agent.RemoveVmAsync(vm);
        }, TaskScheduler.Default);
        return (incoming, preallocatable);
    }
}
