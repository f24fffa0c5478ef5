using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;

namespace MigrationFabric.Memory.Bench;

/// <summary>Fault path through a local in-memory handler (sync, and async with a thread hop): p50/p99 from the MMU's own histogram.</summary>
public sealed class FaultLatencyBenchmark : IMemoryBenchmark
{
    public string Name => "fault-latency";
    public string Description => "page-fault latency through a local handler (p50/p99), 1 and 2 faulting vCPUs";

    /// <summary>Keeps evicted pages in a managed array, as a RAM-backed swap would.</summary>
    private sealed class LocalStoreHandler(long pages, bool hop) : IPageFaultHandler
    {
        private readonly byte[] _store = new byte[pages * Page.Size];

        public void Save(GuestMemory m, long page) => m.GetPageBytes(page).CopyTo(_store.AsSpan((int)(page * Page.Size), Page.Size));

        public async ValueTask ResolveAsync(PageFault fault, CancellationToken cancellationToken)
        {
            if (hop) await Task.Yield();
            var dest = fault.Memory.BeginInstall(fault.Page, fault.Residency);
            if (dest.IsEmpty) return;
            _store.AsSpan((int)(fault.Page.Value * Page.Size), Page.Size).CopyTo(dest);
            fault.Memory.CompleteInstall(fault.Page, fault.Residency);
        }
    }

    public Task RunAsync(string[] args, CancellationToken cancellationToken)
    {
        const long size = 256L << 20;
        Console.WriteLine($"guest memory {size >> 20} MiB; every page evicted to Swapped, then read once by the vCPU(s): one fault per page");
        Console.WriteLine($"{"handler",-22} {"vCPUs",5} {"faults",8} {"p50 us",8} {"p99 us",8} {"max us",8} {"mean us",8}");
        foreach (bool hop in new[] { false, true })
            foreach (int vcpus in new[] { 1, 2 })
            {
                cancellationToken.ThrowIfCancellationRequested();
                using var memory = new GuestMemory(size);
                var handler = new LocalStoreHandler(memory.PageCount, hop);
                using var mmu = new SoftwareMmu(memory, handler);
                using (var cpu = mmu.CreateVcpu())
                    for (long p = 0; p < memory.PageCount; p++) cpu.WriteUInt64(p << Page.Shift, (ulong)p);
                for (long p = 0; p < memory.PageCount; p++) handler.Save(memory, p);
                memory.BeginEviction(0, (int)memory.PageCount);
                memory.CompleteEviction(0, (int)memory.PageCount, PageResidency.Swapped);
                var threads = new Thread[vcpus];
                long per = memory.PageCount / vcpus;
                for (int i = 0; i < vcpus; i++)
                {
                    int index = i;
                    threads[i] = new Thread(() =>
                    {
                        using var cpu = mmu.CreateVcpu();
                        for (long p = index * per; p < (index + 1) * per; p++)
                            if (cpu.ReadUInt64(p << Page.Shift) != (ulong)p) throw new InvalidOperationException($"page {p} came back wrong");
                    });
                    threads[i].Start();
                }
                foreach (var t in threads) t.Join();
                var h = mmu.FaultLatency;
                Console.WriteLine($"{(hop ? "async (Task.Yield hop)" : "sync (local copy)"),-22} {vcpus,5} {h.Count,8} {h.PercentileNanoseconds(0.5) / 1000.0,8:F1} {h.PercentileNanoseconds(0.99) / 1000.0,8:F1} {h.MaxNanoseconds / 1000.0,8:F1} {h.MeanNanoseconds / 1000.0,8:F1}");
            }
        return Task.CompletedTask;
    }
}
