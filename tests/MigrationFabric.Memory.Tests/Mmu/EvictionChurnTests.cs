using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Tests.Support;
using Xunit;

namespace MigrationFabric.Memory.Tests.Mmu;

public class EvictionChurnTests
{
    /// <summary>A RAM-backed swap: page bytes saved on eviction, installed back on fault.</summary>
    private sealed class StoreHandler(long pages) : IPageFaultHandler
    {
        private readonly byte[] _store = new byte[pages * Page.Size];

        public void Save(GuestMemory m, long page) => m.GetPageBytes(page).CopyTo(_store.AsSpan((int)(page * Page.Size), Page.Size));

        public ValueTask ResolveAsync(PageFault fault, CancellationToken cancellationToken)
        {
            var dest = fault.Memory.BeginInstall(fault.Page, fault.Residency);
            if (!dest.IsEmpty)
            {
                _store.AsSpan((int)(fault.Page.Value * Page.Size), Page.Size).CopyTo(dest);
                fault.Memory.CompleteInstall(fault.Page, fault.Residency);
            }
            return ValueTask.CompletedTask;
        }
    }

    [Fact]
    public async Task Vcpus_always_read_their_last_write_while_pages_are_evicted_and_faulted_back_under_them()
    {
        const long pages = 64;
        using var m = new GuestMemory(16L << 20);
        var handler = new StoreHandler(pages);
        using var mmu = new SoftwareMmu(m, handler);
        using var stop = new CancellationTokenSource();
        long evictions = 0;
        // two vCPUs share every page (different 8-byte words), so evictions hit pages both are using
        var vcpus = Enumerable.Range(0, 2).Select(i => VcpuThread.Start(() =>
        {
            using var cpu = mmu.CreateVcpu();
            var last = new ulong[pages];
            var rng = new Random(i);
            for (ulong v = 1; !stop.IsCancellationRequested; v++)
            {
                long p = rng.NextInt64(pages);
                long addr = p * Page.Size + 8 * i;
                Assert.Equal(last[p], cpu.ReadUInt64(addr));
                cpu.WriteUInt64(addr, v);
                last[p] = v;
            }
        })).ToArray();
        var evictor = VcpuThread.Start(() =>
        {
            var rng = new Random(99);
            while (!stop.IsCancellationRequested)
            {
                long p = rng.NextInt64(pages);
                if (m.BeginEviction(p, 1) == 0) continue;
                handler.Save(m, p);
                if (rng.Next(4) == 0) m.CancelEviction(p, 1);
                else { m.CompleteEviction(p, 1, PageResidency.Swapped); evictions++; }
            }
        });
        var deadline = DateTime.UtcNow.AddMilliseconds(400);
        while (DateTime.UtcNow < deadline && !vcpus.Any(t => t.IsCompleted)) await Task.Delay(20);
        stop.Cancel();
        await Task.WhenAll([.. vcpus, evictor]).WaitAsync(VcpuThread.Generous);
        Assert.True(evictions > 10, $"only {evictions} evictions happened");
        Assert.True(mmu.FaultsResolved > 10, $"only {mmu.FaultsResolved} faults happened");
        Assert.Equal(m.CountOf(PageResidency.Resident) + m.CountOf(PageResidency.Evicting), m.ResidentPages);
    }
}
