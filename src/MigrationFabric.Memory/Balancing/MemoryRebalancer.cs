namespace MigrationFabric.Memory.Balancing;

/// <summary>One VM's input to a re-balance: its measured demand and its QoS terms, all in pages.</summary>
/// <param name="DemandPages">Estimated demand (from <see cref="DemandMonitor"/>).</param>
/// <param name="ReservationPages">Guaranteed minimum.</param>
/// <param name="MaxPages">Most it can use (its configured memory size).</param>
/// <param name="Weight">Share of contended memory relative to the others (positive).</param>
public readonly record struct VmMemoryDemand(long DemandPages, long ReservationPages, long MaxPages, double Weight);

/// <summary>Options of the memory re-balancer.</summary>
public sealed class MemoryRebalancerOptions
{
    /// <summary>Headroom added to each demand before allocating (need = demand * (1 + headroom)). Default 0.1.</summary>
    public double HeadroomFraction { get; set; } = 0.1;

    /// <summary>Hand memory left after every need is met to the VMs by weight (up to their maximum); otherwise it stays with the host. Default true.</summary>
    public bool DistributeSpare { get; set; } = true;

    /// <summary>Throws an exception naming the first invalid option.</summary>
    public void Validate()
    {
        if (double.IsNaN(HeadroomFraction) || HeadroomFraction < 0 || HeadroomFraction > 10)
            throw new ArgumentException($"MemoryRebalancerOptions.HeadroomFraction must be within 0..10, was {HeadroomFraction}.", nameof(HeadroomFraction));
    }
}

/// <summary>Divides a host's memory among its VMs by demand, reservation and weight (VMMB's periodic re-balance); a pure function.</summary>
/// <remarks>
/// Each VM needs clamp(demand * (1 + headroom), reservation, max). When the needs fit, every VM gets
/// its need and the spare is water-filled by weight up to each maximum. When they do not, every VM
/// gets its reservation and the rest is water-filled by weight up to each need: a VM above its
/// reservation gets (weight / sum of weights) of what is contended, except that none exceeds its need
/// and what a capped VM does not take goes to the others. Integer pages left by rounding go one each
/// to the uncapped VMs with the fewest pages per unit of weight.
/// </remarks>
public sealed class MemoryRebalancer
{
    private readonly MemoryRebalancerOptions _options;

    /// <summary>Creates a re-balancer.</summary>
    public MemoryRebalancer(MemoryRebalancerOptions? options = null)
    {
        _options = options ?? new MemoryRebalancerOptions();
        _options.Validate();
    }

    /// <summary>Target memory per VM (same order as <paramref name="vms"/>), summing to at most <paramref name="hostBudgetPages"/>.</summary>
    /// <exception cref="ArgumentException">A VM's terms are invalid (the message names it).</exception>
    /// <exception cref="InvalidOperationException">The reservations alone exceed the budget.</exception>
    public long[] ComputeTargets(IReadOnlyList<VmMemoryDemand> vms, long hostBudgetPages)
    {
        ArgumentNullException.ThrowIfNull(vms);
        if (hostBudgetPages < 0)
            throw new ArgumentOutOfRangeException(nameof(hostBudgetPages), hostBudgetPages, "the host budget must not be negative.");
        var n = vms.Count;
        var need = new long[n];
        long reserved = 0, needed = 0;
        for (var i = 0; i < n; i++)
        {
            var vm = vms[i];
            if (vm.DemandPages < 0 || vm.ReservationPages < 0 || vm.MaxPages <= 0)
                throw new ArgumentException($"VM {i}: demand, reservation must be non-negative and max positive (demand {vm.DemandPages}, reservation {vm.ReservationPages}, max {vm.MaxPages}).", nameof(vms));
            if (vm.ReservationPages > vm.MaxPages)
                throw new ArgumentException($"VM {i}: reservation {vm.ReservationPages} exceeds its maximum {vm.MaxPages} pages.", nameof(vms));
            if (!(vm.Weight > 0) || double.IsInfinity(vm.Weight))
                throw new ArgumentException($"VM {i}: weight must be positive and finite, was {vm.Weight}.", nameof(vms));
            var withHeadroom = (long)Math.Min(vm.MaxPages, Math.Ceiling(vm.DemandPages * (1 + _options.HeadroomFraction)));
            need[i] = Math.Clamp(withHeadroom, vm.ReservationPages, vm.MaxPages);
            reserved += vm.ReservationPages;
            needed += need[i];
        }
        if (reserved > hostBudgetPages)
            throw new InvalidOperationException($"the VMs' reservations ({reserved} pages) exceed the host budget ({hostBudgetPages} pages).");

        var targets = new long[n];
        var caps = new long[n];
        if (needed <= hostBudgetPages)
        {
            for (var i = 0; i < n; i++)
            {
                targets[i] = need[i];
                caps[i] = vms[i].MaxPages;
            }
            if (_options.DistributeSpare) WaterFill(targets, caps, vms, hostBudgetPages - needed);
        }
        else
        {
            for (var i = 0; i < n; i++)
            {
                targets[i] = vms[i].ReservationPages;
                caps[i] = need[i];
            }
            WaterFill(targets, caps, vms, hostBudgetPages - reserved);
        }
        return targets;
    }

    // Gives `amount` pages to targets in proportion to weight, never past caps; what a capped VM leaves goes round again.
    private static void WaterFill(long[] targets, long[] caps, IReadOnlyList<VmMemoryDemand> vms, long amount)
    {
        var n = targets.Length;
        var start = (long[])targets.Clone();
        var active = new bool[n];
        var activeCount = 0;
        for (var i = 0; i < n; i++)
        {
            active[i] = targets[i] < caps[i];
            if (active[i]) activeCount++;
        }
        while (amount > 0 && activeCount > 0)
        {
            double weightSum = 0;
            for (var i = 0; i < n; i++) if (active[i]) weightSum += vms[i].Weight;

            // Anyone whose proportional share would overshoot its cap is filled to the cap and leaves the round.
            var capped = false;
            for (var i = 0; i < n; i++)
            {
                if (!active[i]) continue;
                if (targets[i] + amount * (vms[i].Weight / weightSum) >= caps[i])
                {
                    amount -= caps[i] - targets[i];
                    targets[i] = caps[i];
                    active[i] = false;
                    activeCount--;
                    capped = true;
                }
            }
            if (capped) continue;

            long given = 0;
            for (var i = 0; i < n; i++)
            {
                if (!active[i]) continue;
                var share = (long)Math.Floor(amount * (vms[i].Weight / weightSum));
                targets[i] += share;
                given += share;
            }
            var left = amount - given;
            // Rounding leftovers (fewer than the active VMs): one page each, to the lowest pages-per-weight first.
            while (left > 0)
            {
                var best = -1;
                for (var i = 0; i < n; i++)
                {
                    if (active[i] && targets[i] < caps[i]
                        && (best < 0 || (targets[i] - start[i]) / vms[i].Weight < (targets[best] - start[best]) / vms[best].Weight)) best = i;
                }
                if (best < 0) break;
                targets[best]++;
                left--;
                active[best] = false;
            }
            return;
        }
    }
}
