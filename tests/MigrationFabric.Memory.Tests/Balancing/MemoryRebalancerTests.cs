using FsCheck;
using FsCheck.Fluent;
using MigrationFabric.Memory.Balancing;
using Xunit;

namespace MigrationFabric.Memory.Tests.Balancing;

public sealed class MemoryRebalancerTests
{
    private static readonly MemoryRebalancer NoHeadroom = new(new MemoryRebalancerOptions { HeadroomFraction = 0 });

    private static Gen<VmMemoryDemand> VmGen =>
        from max in Gen.Choose(1, 5000)
        from reservation in Gen.Choose(0, max)
        from demand in Gen.Choose(0, 6000)
        from weight in Gen.Choose(1, 8)
        select new VmMemoryDemand(demand, reservation, max, weight);

    private static Gen<(VmMemoryDemand[] Vms, long Budget)> CaseGen =>
        from vms in Gen.NonEmptyListOf(VmGen).Select(l => l.ToArray())
        from extra in Gen.Choose(0, 20000)
        select (vms, vms.Sum(v => v.ReservationPages) + (long)extra);

    private static long Need(VmMemoryDemand v) => Math.Clamp(v.DemandPages, v.ReservationPages, v.MaxPages);

    [Fact]
    public void Targets_respect_budget_reservations_maxima_and_needs()
    {
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(500),
            Prop.ForAll(Arb.From(CaseGen), c =>
            {
                var t = NoHeadroom.ComputeTargets(c.Vms, c.Budget);
                var needed = c.Vms.Sum(Need);
                var ok = t.Length == c.Vms.Length && t.Sum() <= c.Budget;
                for (var i = 0; i < t.Length; i++)
                {
                    var v = c.Vms[i];
                    ok &= t[i] >= v.ReservationPages && t[i] <= v.MaxPages;
                    // Needs that fit are all met; contended memory never goes past a need.
                    ok &= needed <= c.Budget ? t[i] >= Need(v) : t[i] <= Need(v);
                }
                // Work conserving: memory stays unassigned only when every VM is at its maximum.
                if (t.Sum() < c.Budget) ok &= t.Select((x, i) => x == c.Vms[i].MaxPages).All(b => b);
                return ok;
            }));
    }

    [Fact]
    public void Contended_memory_above_reservations_is_shared_in_proportion_to_weight()
    {
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(2000),
            Prop.ForAll(Arb.From(CaseGen), c =>
            {
                if (c.Vms.Sum(Need) <= c.Budget) return true;
                var t = NoHeadroom.ComputeTargets(c.Vms, c.Budget);
                // Level = pages above reservation per unit of weight. Uncapped VMs share one level, up to one page of
                // rounding each (1/w_i + 1/w_j apart at most); a VM held at its need is at or below that level.
                double Level(int i) => (t[i] - c.Vms[i].ReservationPages) / c.Vms[i].Weight;
                var uncapped = Enumerable.Range(0, t.Length).Where(i => t[i] < Need(c.Vms[i])).ToArray();
                if (uncapped.Length == 0) return true;
                var max = uncapped.Max(Level);
                var ok = true;
                foreach (var i in uncapped)
                    foreach (var j in uncapped)
                        ok &= Level(i) - Level(j) <= 1.0 / c.Vms[i].Weight + 1.0 / c.Vms[j].Weight + 1e-9;
                for (var i = 0; i < t.Length; i++)
                {
                    if (t[i] == Need(c.Vms[i])) ok &= Level(i) <= max + 1.0 + 1e-9;
                }
                return ok;
            }));
    }

    [Fact]
    public void A_starved_vm_gets_memory_from_idle_ones_and_weight_decides_contention()
    {
        var balancer = new MemoryRebalancer();
        // Two VMs of 4096 pages on a 6000-page host: one idle (demand 100), one needing 3000.
        var t = balancer.ComputeTargets([new(100, 512, 4096, 1), new(3000, 512, 4096, 1)], 6000);
        Assert.True(t[1] >= 3300, $"the busy VM gets its demand plus 10% headroom: {t[1]}");
        Assert.Equal(6000, t.Sum());

        // Both need everything; weights 3:1 split what is above the reservations 3:1.
        var u = NoHeadroom.ComputeTargets([new(4096, 1000, 4096, 3), new(4096, 1000, 4096, 1)], 6000);
        Assert.Equal([4000, 2000], u);
    }

    [Fact]
    public void Bad_input_names_what_is_wrong()
    {
        var b = new MemoryRebalancer();
        Assert.Contains("reservations (3000 pages) exceed the host budget (2000",
            Assert.Throws<InvalidOperationException>(() => b.ComputeTargets([new(0, 1500, 2000, 1), new(0, 1500, 2000, 1)], 2000)).Message);
        Assert.Contains("VM 1: weight", Assert.Throws<ArgumentException>(() => b.ComputeTargets([new(0, 0, 10, 1), new(0, 0, 10, 0)], 20)).Message);
        Assert.Contains("VM 0: reservation 20 exceeds", Assert.Throws<ArgumentException>(() => b.ComputeTargets([new(0, 20, 10, 1)], 20)).Message);
        Assert.Throws<ArgumentException>(() => b.ComputeTargets([new(-1, 0, 10, 1)], 20));
        Assert.Throws<ArgumentOutOfRangeException>(() => b.ComputeTargets([], -1));
        Assert.Contains("HeadroomFraction", Assert.Throws<ArgumentException>(() => new MemoryRebalancer(new MemoryRebalancerOptions { HeadroomFraction = -1 })).Message);
        Assert.Empty(b.ComputeTargets([], 100));
    }
}
