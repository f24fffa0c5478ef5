using System.Collections.Concurrent;
using MigrationFabric.Host.Errors;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Swap;
using MigrationFabric.Rpc;
using ApiWorkload = MigrationFabric.Contracts.V1.Workload;

namespace MigrationFabric.Host.Hypervisor;

/// <summary>This host's VMs and its physical-memory budget: admission reserves a VM's whole size.</summary>
public sealed class LocalHypervisor : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, LocalVm> _vms = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, long> _reservedOf = new(StringComparer.Ordinal);
    private readonly Lock _budgetLock = new();
    private long _reserved;

    /// <summary>A hypervisor of <paramref name="budgetBytes"/> bytes of physical memory.</summary>
    public LocalHypervisor(string hostName, long budgetBytes)
    {
        HostName = hostName;
        BudgetBytes = budgetBytes;
    }

    /// <summary>The host's name.</summary>
    public string HostName { get; }

    /// <summary>Physical memory VMs may have.</summary>
    public long BudgetBytes { get; }

    /// <summary>Memory reserved by admitted VMs (running and incoming) and by parts held for other hosts.</summary>
    public long ReservedBytes { get { lock (_budgetLock) return _reserved; } }

    /// <summary>Budget not reserved: what this host can still admit.</summary>
    public long FreeBytes { get { lock (_budgetLock) return BudgetBytes - _reserved; } }

    /// <summary>What admission reserved for VM <paramref name="name"/> here (0 when it is not here).</summary>
    public long ReservedFor(string name) => _reservedOf.GetValueOrDefault(name);

    /// <summary>Bytes resident in all VMs.</summary>
    public long ResidentBytes
    {
        get
        {
            long n = 0;
            foreach (var vm in _vms.Values) n += vm.ResidentBytes;
            return n;
        }
    }

    /// <summary>The VMs here, by name.</summary>
    public IReadOnlyDictionary<string, LocalVm> Vms => _vms;

    /// <summary>The VM called <paramref name="name"/> if it is here.</summary>
    public LocalVm? Find(string name) => _vms.GetValueOrDefault(name);

    /// <summary>Admits and creates a VM (not started). Throws <paramref name="noRoom"/> status when the budget cannot hold it.</summary>
    /// <param name="privateMemory">Over-commit: the VM lives in private virtual memory and admission reserves its share only.</param>
    /// <param name="reserveBytes">Reserve this much instead of the whole VM (a split VM's main host holds its share only).</param>
    public LocalVm Admit(string name, long memoryBytes, ApiWorkload workload, StatusCode noRoom, IPageFaultHandler? faultHandler = null,
        PrivateVirtualMemoryOptions? privateMemory = null, long? reserveBytes = null)
    {
        long reserve = privateMemory?.SharePages is { } share ? share * Page.Size : reserveBytes ?? memoryBytes;
        Reserve(name, reserve, noRoom);
        LocalVm vm;
        try
        {
            vm = new LocalVm(name, workload, memoryBytes, faultHandler, privateMemory);
        }
        catch
        {
            Release(reserve);
            throw;
        }
        if (!_vms.TryAdd(name, vm))
        {
            Release(reserve);
            _ = vm.DisposeAsync();
            throw new FabricException(StatusCode.AlreadyExists, $"VM '{name}' is already on host '{HostName}'.");
        }
        _reservedOf[name] = reserve;
        return vm;
    }

    /// <summary>Called for each VM removed, once its vCPUs have stopped and before its memory is unmapped: the agent detaches what migrations attached to the VM (HostAgentContext.Attachments). Default null.</summary>
    public Action<LocalVm>? BeforeUnmap { get; set; }

    /// <summary>Stops and frees the VM; returns the bytes freed (0 if it was not here).</summary>
    public async Task<long> RemoveAsync(string name)
    {
        if (!_vms.TryRemove(name, out var vm)) return 0;
        long bytes;
        // Under the budget lock so a share change (ChangeShare) is either wholly before this or sees the VM gone.
        lock (_budgetLock) _reservedOf.TryRemove(name, out bytes);
        await vm.DisposeAsync(BeforeUnmap).ConfigureAwait(false);
        Release(bytes);
        return bytes;
    }

    /// <summary>Held while a rebalance of this host computes and applies its targets, so two never interleave.</summary>
    internal Lock RebalanceGate { get; } = new();

    /// <summary>Moves an over-committed VM's share to <paramref name="shareBytes"/> (a rebalance), its reservation with it; a growth only as far as the budget has unreserved room.</summary>
    /// <returns>The share now in force, bytes.</returns>
    /// <exception cref="InvalidOperationException">The VM has no private share, or is no longer here.</exception>
    public long ChangeShare(LocalVm vm, long shareBytes)
    {
        var pager = vm.Pager ?? throw new InvalidOperationException($"VM {vm.Name} is not over-committed: it has no private share to change.");
        lock (_budgetLock)
        {
            if (!ReferenceEquals(Find(vm.Name), vm) || !_reservedOf.TryGetValue(vm.Name, out long reserved))
                throw new InvalidOperationException($"VM {vm.Name} is no longer on host '{HostName}'.");
            long granted = Math.Min(shareBytes, reserved + Math.Max(0, BudgetBytes - _reserved));
            long pages = Math.Clamp(granted / Page.Size, 1, vm.Memory.PageCount);
            pager.SetSharePages(pages);
            _reserved += pages * Page.Size - reserved;
            _reservedOf[vm.Name] = pages * Page.Size;
            return pages * Page.Size;
        }
    }

    /// <summary>Reserves <paramref name="bytes"/> of the budget for <paramref name="name"/> (a VM or a part held for another host); throws <paramref name="noRoom"/> status when it cannot.</summary>
    internal void Reserve(string name, long bytes, StatusCode noRoom)
    {
        lock (_budgetLock)
        {
            if (_reserved + bytes > BudgetBytes)
                throw new FabricException(noRoom,
                    $"host '{HostName}' cannot admit VM '{name}': it needs {Mib(bytes)} MiB, the host has {Mib(BudgetBytes - _reserved)} MiB free of a {Mib(BudgetBytes)} MiB budget.");
            _reserved += bytes;
        }
    }

    /// <summary>Returns <paramref name="bytes"/> reserved by <see cref="Reserve"/>.</summary>
    internal void Release(long bytes)
    {
        lock (_budgetLock) _reserved -= bytes;
    }

    private static string Mib(long bytes) => (bytes / (1024.0 * 1024)).ToString("0.#", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Stops every VM.</summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var name in _vms.Keys.ToArray()) await RemoveAsync(name).ConfigureAwait(false);
    }
}
