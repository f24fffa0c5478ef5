using System.Diagnostics;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Swap;
using MigrationFabric.Memory.Workloads;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.MultiHost;
using MigrationFabric.Migration.PrivateMemory;
using MigrationFabric.Migration.RemotePaging;
using MigrationFabric.Migration.Reporting;
using MigrationFabric.Migration.Strategies;
using MigrationFabric.Rpc.Server;

namespace MigrationFabric.Migration.Bench;

/// <summary>Seed 004 scaled down: a VM larger than the destination's budget migrated by naive swap, VMemDirect, split (main + 1 sub-host) and ideal; migration time, downtime and the memory benchmark's rate after migration.</summary>
internal static class VMemDirectBench
{
    private sealed class Host : IAsyncDisposable
    {
        public PagesService Pages { get; } = new();
        public RpcServer Server { get; } = new(new RpcServerOptions { Port = 0 });
        public Uri Address => Server.Address;

        public static async Task<Host> StartAsync()
        {
            var h = new Host();
            h.Server.AddService(h.Pages.Definition);
            await h.Server.StartAsync();
            return h;
        }

        public ValueTask DisposeAsync() => Server.DisposeAsync();
    }

    /// <summary>Every kind the bench knows; "vmem-direct" pages with AsyncMethod1, "vmem-direct-m2" with AsyncMethod2.</summary>
    public static readonly string[] AllKinds = ["naive", "vmem-direct", "split", "ideal"];

    public static async Task RunAsync(long sizeMib, long budgetMib, double measureSeconds, IReadOnlyList<string>? kinds = null)
    {
        kinds ??= AllKinds;
        long size = sizeMib << 20;
        long budgetPages = (budgetMib << 20) / Page.Size;
        Console.WriteLine($"vmemdirect bench: VM {sizeMib} MiB, destination budget {budgetMib} MiB + private swap (file in {Path.GetTempPath()}, page cache), " +
            $"{Environment.ProcessorCount} cores, {DateTime.UtcNow:yyyy-MM-dd HH:mm:ss} UTC, load {File.ReadAllText("/proc/loadavg").Trim()}");
        Console.WriteLine("active = memory benchmark writing the first 1/16 of the VM during migration; after migration the memory benchmark sweeps the whole VM at the destination for the measured rate.");
        foreach (var active in new[] { false, true })
            foreach (var kind in kinds)
                await RunOneAsync(kind, active, size, budgetPages, measureSeconds);
    }

    private static async Task RunOneAsync(string kind, bool active, long size, long budgetPages, double measureSeconds)
    {
        await using var source = await Host.StartAsync();
        await using var destination = await Host.StartAsync();
        await using var sub = await Host.StartAsync();
        using var vm = new GuestMemory(size);
        using var vmMmu = new SoftwareMmu(vm);
        Fill(vmMmu);
        using var stop = new CancellationTokenSource();
        Task? running = null;
        if (active)
        {
            running = new MemoryBenchmarkWorkload(new MemoryBenchmarkOptions { Pages = vm.PageCount / 16 }).RunAsync(vmMmu, stop.Token);
            await Task.Delay(500);
        }
        using var target = new GuestMemory(size);
        using var subMemory = new GuestMemory(size);
        PrivateMemoryDestination? pvm = null;
        SplitMainHost? main = null;
        SoftwareMmu? idealMmu = null;
        string id = $"bench-{kind}-{(active ? "active" : "idle")}";
        MigrationStrategy strategy;
        SoftwareMmu targetMmu;
        switch (kind)
        {
            case "naive" or "vmem-direct" or "vmem-direct-m2":
                pvm = new PrivateMemoryDestination(target, budgetPages,
                    kind == "naive" ? PagingMode.Naive : kind == "vmem-direct-m2" ? PagingMode.AsyncMethod2 : PagingMode.AsyncMethod1);
                targetMmu = pvm.Mmu;
                destination.Pages.Accept(pvm.Incoming(id, "vm"));
                strategy = new VMemDirect(new VMemDirectOptions { Kind = kind == "naive" ? VirtualizationKind.NaiveSwap : VirtualizationKind.VMemDirect, MaxRounds = 5 });
                break;
            case "split":
                targetMmu = idealMmu = new SoftwareMmu(target);
                SplitSubHost.Accept(sub.Pages, id, "vm", subMemory);
                main = new SplitMainHost(id, "vm", target, targetMmu, sub.Address, new RemotePagerOptions { BudgetPages = budgetPages });
                destination.Pages.Accept(main.Incoming);
                strategy = new Split(new SplitOptions { SubHosts = [sub.Address], MainBudgetPages = budgetPages, SplitMaxRounds = 5 });
                break;
            case "ideal":
                targetMmu = idealMmu = new SoftwareMmu(target);
                destination.Pages.Accept(new IncomingMigration(id, "vm", target, targetMmu));
                strategy = new VMemDirect(new VMemDirectOptions { Kind = VirtualizationKind.Ideal, MaxRounds = 5 });
                break;
            default:
                throw new ArgumentException($"--kinds: unknown kind '{kind}' (known: naive, vmem-direct, vmem-direct-m2, split, ideal).");
        }
        try
        {
            var report = await strategy.RunAsync(new MigrationJob { MigrationId = id, Vm = "vm", Memory = vm, Mmu = vmMmu, Destination = destination.Address });
            stop.Cancel();
            if (running is not null) await running;
            var paging = pvm?.Pager.Statistics.Snapshot();
            // The VM runs at the destination now: the memory benchmark over all of it.
            var bench = new MemoryBenchmarkWorkload(new MemoryBenchmarkOptions());
            using var benchStop = new CancellationTokenSource();
            var sw = Stopwatch.StartNew();
            var benchRun = bench.RunAsync(targetMmu, benchStop.Token);
            await Task.Delay(TimeSpan.FromSeconds(measureSeconds));
            long bytes = bench.TotalOperations;
            double secs = sw.Elapsed.TotalSeconds;
            benchStop.Cancel();
            // A vCPU waiting in a remote fault when the stop comes ends with that fault cancelled; the rate is taken already.
            try { await benchRun; }
            catch (PageFaultException) when (benchStop.IsCancellationRequested) { }
            string pagingText = paging is { } s
                ? $", during migration: placed mem {s.PlacedInMemory:N0} swap {s.PlacedInSwap:N0}, updated mem {s.UpdatedInMemory:N0} swap {s.UpdatedInSwap:N0}, page-ins {s.PageIns:N0}, page-outs {s.PageOuts:N0}"
                : main is not null ? $", remote paging after: in {main.Pager.PageIns:N0} out {main.Pager.PageOuts:N0}" : "";
            Console.WriteLine($"{(active ? "active" : "idle"),-6} {kind,-11}: migration {report.TotalTime.TotalMilliseconds,8:0.0} ms, downtime {report.Downtime.TotalMilliseconds,8:0.00} ms, " +
                $"rounds {report.Rounds.Count}, bytes {report.BytesSent,14:N0}, verified {report.PagesVerified:N0} pages; membench after {bytes / secs / 1e9,6:0.000} GB/s ({secs:0.0} s){pagingText}");
        }
        finally
        {
            stop.Cancel();
            main?.Dispose();
            idealMmu?.Dispose();
            if (pvm is not null) await pvm.DisposeAsync();
        }
    }

    private static void Fill(SoftwareMmu mmu)
    {
        using var cpu = mmu.CreateVcpu();
        Span<byte> page = stackalloc byte[Page.Size];
        for (long p = 0; p < mmu.Memory.PageCount; p++)
        {
            page.Fill((byte)(p * 7 + 1));
            BitConverter.TryWriteBytes(page, p);
            cpu.Write(p << Page.Shift, page);
        }
    }
}
