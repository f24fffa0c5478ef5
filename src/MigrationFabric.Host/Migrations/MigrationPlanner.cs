namespace MigrationFabric.Host.Migrations;

using MigrationFabric.Contracts.V1;
using MigrationFabric.Host.Errors;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Migration.MultiHost;

/// <summary>Decides, from the hosts' free memory, what each receiving host of a migration reserves and holds (FAILED_PRECONDITION naming the host when it cannot).</summary>
/// <remarks>
/// Plain strategies: the destination reserves the whole VM (its admission says when it has no room). VMemDirect / naive swap: the destination has less room
/// than the VM and gives all it has as the VM's private share. Devirtualizing: a VM in private memory moves to a host
/// with room for all of it. Split: the main gives all it has (its share, the hottest pages), the sub-hosts share
/// the rest evenly. Scatter-gather: the destination reserves the whole VM, each intermediate the 1 MiB blocks dealt to it.
/// A split VM moves again only by pre-copy, to a host that is none of its sub-hosts (its main reads every page wherever it lives).
/// </remarks>
public static class MigrationPlanner
{
    /// <summary>The smallest private share or main-host share a VM is given: 4 MiB (below it the pager has no room to work).</summary>
    public const long MinShareBytes = 4L << 20;

    /// <summary>Pages the main host of a split keeps free under its share for page-ins (its remote pager's page-out batch).</summary>
    public const int MainPageOutBatch = 64;

    /// <summary>Plans <paramref name="request"/> (already validated) for <paramref name="vm"/> with each named host's room.</summary>
    public static MigrationPlan Plan(StartMigrationRequest request, VmFacts vm, IReadOnlyDictionary<string, HostRoom> rooms)
    {
        string name = vm.Name;
        foreach (var sub in request.SubHosts)
            if (sub == vm.Host)
                throw FabricException.Invalid($"sub_hosts names '{sub}', the source host of VM '{name}'; a {StrategyCatalog.NameOf(request.Strategy)} migration needs hosts other than the source.");
        var strategy = request.Strategy;
        if (vm.RemoteHosts.Length > 0)
        {
            // Its pages are read at the main wherever they live; only pre-copy reads the source that way.
            string held = string.Join(", ", vm.RemoteHosts.Select(h => $"'{h}'"));
            if (strategy != Strategy.PreCopy)
                throw FabricException.Precondition(
                    $"VM '{name}' is split (part of its memory is held by {held}); {StrategyCatalog.NameOf(strategy)} cannot move a split VM: " +
                    "use pre-copy to a host with room for all of it, which gathers every page there and frees the sub-hosts.");
            if (vm.RemoteHosts.Contains(request.Destination))
                throw FabricException.Precondition(
                    $"VM '{name}' is split and host '{request.Destination}' holds part of it; move it with pre-copy to a host other than its main and sub-hosts ({held}).");
        }
        if (vm.InPrivateMemory && strategy is not (Strategy.VmemDevirtualize or Strategy.VmemDirect or Strategy.NaiveSwap))
            throw FabricException.Precondition(
                $"VM '{name}' lives in private virtual memory on host '{vm.Host}' (part of it is in its swap file); move it with vmem-devirtualize (to a host with room for all of it) or vmem-direct.");

        var dest = rooms[request.Destination];
        long vmPages = vm.MemoryBytes / Page.Size;
        switch (strategy)
        {
            case Strategy.VmemDirect or Strategy.NaiveSwap:
            {
                if (dest.FreeBytes >= vm.MemoryBytes)
                    throw FabricException.Precondition(
                        $"host '{dest.Host}' has room for all of VM '{name}' ({Mib(dest.FreeBytes)} MiB free, the VM needs {Mib(vm.MemoryBytes)} MiB); {StrategyCatalog.NameOf(strategy)} is for a destination smaller than the VM: use pre-copy.");
                long share = dest.FreeBytes / Page.Size * Page.Size;
                if (share < MinShareBytes)
                    throw FabricException.Precondition(
                        $"host '{dest.Host}' has no room for VM '{name}': {Mib(dest.FreeBytes)} MiB free, {StrategyCatalog.NameOf(strategy)} needs a share of at least {Mib(MinShareBytes)} MiB.");
                return new MigrationPlan(new PlannedHost(dest.Host, dest.Endpoint, "destination", share, 0), [], share / Page.Size, vm.InPrivateMemory);
            }
            case Strategy.VmemDevirtualize:
                if (!vm.InPrivateMemory)
                    throw FabricException.Precondition(
                        $"VM '{name}' does not live in private virtual memory on host '{vm.Host}'; there is nothing to devirtualize: use pre-copy.");
                RequireWhole(dest, vm, "vmem-devirtualize moves a VM to a host with room for all of it; use vmem-direct for a smaller host");
                return new MigrationPlan(new PlannedHost(dest.Host, dest.Endpoint, "destination", vm.MemoryBytes, 0), [], 0, true);
            case Strategy.Split:
            {
                if (dest.FreeBytes >= vm.MemoryBytes)
                    throw FabricException.Precondition(
                        $"main host '{dest.Host}' has room for all of VM '{name}' ({Mib(dest.FreeBytes)} MiB free); split is for a main host smaller than the VM: use pre-copy.");
                long share = dest.FreeBytes / Page.Size * Page.Size;
                if (share < MinShareBytes)
                    throw FabricException.Precondition(
                        $"main host '{dest.Host}' has no room for VM '{name}': {Mib(dest.FreeBytes)} MiB free, split needs at least {Mib(MinShareBytes)} MiB at the main.");
                long sharePages = share / Page.Size;
                long mainPages = sharePages - MainPageOutBatch;
                long rest = vmPages - mainPages;
                int n = request.SubHosts.Count;
                long each = (rest + n - 1) / n;
                long subFree = request.SubHosts.Sum(s => rooms[s].FreeBytes);
                if (request.SubHosts.Any(s => rooms[s].FreeBytes < each * Page.Size))
                    throw FabricException.Precondition(
                        $"not enough room for VM '{name}' ({Mib(vm.MemoryBytes)} MiB) across main and sub-hosts: the main '{dest.Host}' gives {Mib(share)} MiB, each of the {n} sub-hosts must hold {Mib(each * Page.Size)} MiB " +
                        $"but {string.Join(", ", request.SubHosts.Where(s => rooms[s].FreeBytes < each * Page.Size).Select(s => $"'{s}' has {Mib(rooms[s].FreeBytes)} MiB free"))} (sub-hosts free in all: {Mib(subFree)} MiB).");
                var others = request.SubHosts.Select(s => new PlannedHost(s, rooms[s].Endpoint, "sub-host", each * Page.Size, each)).ToArray();
                return new MigrationPlan(new PlannedHost(dest.Host, dest.Endpoint, "main", share, mainPages), others, sharePages, false);
            }
            case Strategy.ScatterGather:
            {
                RequireWhole(dest, vm, "the gathering destination holds all of it");
                int n = request.SubHosts.Count;
                var others = new PlannedHost[n];
                for (int k = 0; k < n; k++)
                {
                    long pages = BlocksOf(vmPages, k, n);
                    var room = rooms[request.SubHosts[k]];
                    if (room.FreeBytes < pages * Page.Size)
                        throw FabricException.Precondition(
                            $"intermediate '{room.Host}' has no room for its part of VM '{name}': it must hold {Mib(pages * Page.Size)} MiB, it has {Mib(room.FreeBytes)} MiB free.");
                    others[k] = new PlannedHost(room.Host, room.Endpoint, "intermediate", pages * Page.Size, pages);
                }
                return new MigrationPlan(new PlannedHost(dest.Host, dest.Endpoint, "destination", vm.MemoryBytes, vmPages), others, 0, false);
            }
            default:
                // Room is checked by the destination's admission (a failed migration is recorded when it has none).
                return new MigrationPlan(new PlannedHost(dest.Host, dest.Endpoint, "destination", vm.MemoryBytes, vmPages), [], 0, false);
        }
    }

    /// <summary>Pages of a VM of <paramref name="vmPages"/> pages that scatter-gather deals to intermediate <paramref name="k"/> of <paramref name="n"/>.</summary>
    public static long BlocksOf(long vmPages, int k, int n)
    {
        long count = 0;
        for (long first = 0; first < vmPages; first += 256)
            if (ScatterPlan.IntermediateOf(first, n) == k) count += Math.Min(256, vmPages - first);
        return count;
    }

    private static void RequireWhole(HostRoom dest, VmFacts vm, string hint)
    {
        if (dest.FreeBytes < vm.MemoryBytes)
            throw FabricException.Precondition(
                $"host '{dest.Host}' cannot admit VM '{vm.Name}': it needs {Mib(vm.MemoryBytes)} MiB, the host has {Mib(dest.FreeBytes)} MiB free of a {Mib(dest.BudgetBytes)} MiB budget" +
                (hint.Length > 0 ? $" ({hint})." : "."));
    }

    private static string Mib(long bytes) => (bytes / (1024.0 * 1024)).ToString("0.#", System.Globalization.CultureInfo.InvariantCulture);
}
