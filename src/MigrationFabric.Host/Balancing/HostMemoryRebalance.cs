namespace MigrationFabric.Host.Balancing;

using System.Globalization;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Host.Errors;
using MigrationFabric.Host.Hypervisor;
using MigrationFabric.Memory.Balancing;
using MigrationFabric.Memory.Pages;

/// <summary>Divides one host's memory among its running VMs by demand, reservation and weight (VMMB), and applies what it can.</summary>
/// <remarks>
/// Demand comes from each VM's <see cref="LocalVm.Demand"/> monitor. An over-committed VM (private share + swap)
/// gets its target exactly, as its share; a fully-resident VM can only be lowered by its balloon, which takes the
/// pages the guest never touched or freed, so its target may stay out of reach: the entry says so. Shares shrink
/// before any grows, and a grow is granted only as far as the budget has unreserved room (a fully-resident VM keeps
/// its whole size reserved whatever its balloon holds, since touching a ballooned page takes it back).
/// VMs not started yet (incoming migrations) are left out, their reservations kept.
/// </remarks>
public sealed class HostMemoryRebalance
{
    private readonly LocalHypervisor _hypervisor;
    private readonly HostRebalanceOptions _options;
    private readonly MemoryRebalancer _rebalancer;

    /// <summary>A rebalance of <paramref name="hypervisor"/>'s VMs.</summary>
    public HostMemoryRebalance(LocalHypervisor hypervisor, HostRebalanceOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(hypervisor);
        _options = options ?? new HostRebalanceOptions();
        _options.Validate();
        _hypervisor = hypervisor;
        _rebalancer = new MemoryRebalancer(_options.Targets);
    }

    /// <summary>Computes every running VM's target and, unless <paramref name="dryRun"/>, applies them.</summary>
    /// <exception cref="FabricException">FAILED_PRECONDITION: the VMs' reservations alone exceed the memory to divide.</exception>
    public RebalanceMemoryResponse Rebalance(bool dryRun)
    {
        // A periodic rebalance and one asked for through the API must not interleave their shrinks and grows.
        lock (_hypervisor.RebalanceGate) return RebalanceLocked(dryRun);
    }

    private RebalanceMemoryResponse RebalanceLocked(bool dryRun)
    {
        var vms = new List<LocalVm>();
        foreach (var vm in _hypervisor.Vms.Values)
            if (vm.Workload is not null) vms.Add(vm);
        vms.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));

        // What the rebalanced VMs hold now is theirs to divide; what others reserved (incoming VMs, parts held for other hosts) is not.
        long divided = _hypervisor.BudgetBytes - _hypervisor.ReservedBytes;
        foreach (var vm in vms) divided += _hypervisor.ReservedFor(vm.Name);
        divided = Math.Max(0, divided);

        var demands = new VmMemoryDemand[vms.Count];
        var entries = new VmMemoryTarget[vms.Count];
        long minimumShare = _options.MinimumShareBytes / Page.Size;
        for (int i = 0; i < vms.Count; i++)
        {
            var vm = vms[i];
            long pages = vm.Memory.PageCount;
            long reservation = Math.Min(pages, (vm.ReservationBytes + Page.Size - 1) / Page.Size);
            if (vm.Pager is not null) reservation = Math.Max(reservation, Math.Min(pages, minimumShare));
            long demand = vm.Demand.EstimateDemandPages();
            demands[i] = new VmMemoryDemand(demand, reservation, pages, vm.Weight);
            entries[i] = new VmMemoryTarget
            {
                Vm = vm.Name,
                DemandBytes = (ulong)(demand * Page.Size),
                BeforeBytes = (ulong)vm.ResidentBytes,
                ReservationBytes = (ulong)vm.ReservationBytes,
                Weight = vm.Weight,
                PrivateMemory = vm.Pager is not null,
            };
        }

        long[] targets;
        try
        {
            targets = _rebalancer.ComputeTargets(demands, divided / Page.Size);
        }
        catch (InvalidOperationException e)
        {
            throw FabricException.Precondition($"host '{_hypervisor.HostName}' cannot be rebalanced: {e.Message}");
        }

        var response = new RebalanceMemoryResponse { DividedBytes = (ulong)divided };
        for (int i = 0; i < vms.Count; i++) entries[i].TargetBytes = (ulong)(targets[i] * Page.Size);
        if (dryRun)
        {
            for (int i = 0; i < vms.Count; i++)
                entries[i].Note = "dry run: not applied (" + (vms[i].Pager is not null ? "its share would be set to the target" : "its balloon would be sized to the target") + ").";
        }
        else
        {
            // Shrinks first, so the memory they free is unreserved before anyone grows into it.
            for (int pass = 0; pass < 2; pass++)
                for (int i = 0; i < vms.Count; i++)
                {
                    long target = targets[i] * Page.Size;
                    bool shrink = target < vms[i].ShareBytes;
                    if (shrink == (pass == 0)) Apply(vms[i], target, entries[i]);
                }
        }
        response.Targets.AddRange(entries);
        return response;
    }

    private void Apply(LocalVm vm, long target, VmMemoryTarget entry)
    {
        try
        {
            if (vm.Pager is not null) ApplyShare(vm, target, entry);
            else ApplyBalloon(vm, target, entry);
        }
        catch (Exception e) when (e is InvalidOperationException or ObjectDisposedException)
        {
            entry.Applied = false;
            entry.Note = $"not applied: {e.Message}";
        }
    }

    private void ApplyShare(LocalVm vm, long target, VmMemoryTarget entry)
    {
        long before = vm.ShareBytes;
        long granted = _hypervisor.ChangeShare(vm, target);
        entry.Applied = granted == target;
        entry.Note = granted == target
            ? $"share set to {Mib(granted)} MiB (was {Mib(before)} MiB); pages above it are paged out to its private swap file."
            : $"share raised to {Mib(granted)} MiB only (target {Mib(target)} MiB): the host has no more unreserved memory (fully-resident VMs keep their whole size reserved).";
    }

    private static void ApplyBalloon(LocalVm vm, long target, VmMemoryTarget entry)
    {
        var balloon = vm.Balloon ?? throw new InvalidOperationException($"VM {vm.Name} has neither a private share nor a balloon.");
        long pages = vm.Memory.PageCount;
        long wanted = Math.Max(0, pages - target / Page.Size);
        long size = Math.Min(wanted, balloon.MaxPages);
        if (balloon.SizePages > size) balloon.DeflateTo(size);
        else balloon.InflateTo(size);
        long held = balloon.SizePages;
        entry.Applied = held >= wanted;
        if (wanted == 0)
            entry.Note = "fully resident; its target is its whole size, so its balloon is empty.";
        else if (entry.Applied)
            entry.Note = $"fully resident; its balloon holds {Mib(held * Page.Size)} MiB of pages the guest had not used, so it holds at most its target (touching a ballooned page takes it back).";
        else
            entry.Note = $"not applied: fully resident (no private memory), and its balloon could take only {Mib(held * Page.Size)} of the {Mib(wanted * Page.Size)} MiB asked"
                + (wanted > balloon.MaxPages ? $" (at most {Mib(balloon.MaxPages * Page.Size)} MiB, BalloonOptions.MaxFraction)" : "")
                + $": the guest uses the rest. Only a VM created with share_bytes (private memory) can be held below what its guest uses.";
    }

    private static string Mib(long bytes) => (bytes / (1024.0 * 1024)).ToString("0.#", CultureInfo.InvariantCulture);
}
