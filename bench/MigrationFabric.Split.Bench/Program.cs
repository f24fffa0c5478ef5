using System.Diagnostics;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Workloads;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.MultiHost;
using MigrationFabric.Migration.RemotePaging;
using MigrationFabric.Migration.Reporting;
using MigrationFabric.Migration.Strategies;
using MigrationFabric.Rpc.Server;

// Split bench: a VM split over a main host (budget) and N sub-hosts on loopback, then the memory benchmark sweeping the
// whole VM at the main (every page beyond the budget pages in from a sub-host, and out again) with each remote-pager
// prefetch setting in turn, in one process so the settings compare as ratios from the same run. The main holds the VM's
// first pages when the sweep starts, so the rate over a short window is mostly theirs: page-ins per second is the paging rate.
long sizeMib = 1024, budgetMib = 256;
int subHosts = 1;
double measureSeconds = 3;
int[] prefetches = [0, 16, 64];
int repeats = 3;
int[] runPages = [SplitSourceReader.DefaultRunPages];
for (int i = 0; i < args.Length - 1; i++)
{
    switch (args[i])
    {
        case "--size-mib": sizeMib = long.Parse(args[i + 1]); break;
        case "--budget-mib": budgetMib = long.Parse(args[i + 1]); break;
        case "--sub-hosts": subHosts = int.Parse(args[i + 1]); break;
        case "--measure-seconds": measureSeconds = double.Parse(args[i + 1]); break;
        case "--prefetch": prefetches = [.. args[i + 1].Split(',').Select(int.Parse)]; break;
        case "--repeats": repeats = int.Parse(args[i + 1]); break;
        case "--run-pages": runPages = [.. args[i + 1].Split(',').Select(int.Parse)]; break;
    }
}
if (Environment.GetEnvironmentVariable("MF_BENCH_MIN_THREADS") is { } minThreads) ThreadPool.SetMinThreads(int.Parse(minThreads), int.Parse(minThreads));
long size = sizeMib << 20;
long budgetPages = (budgetMib << 20) / Page.Size;
Console.WriteLine($"split bench: VM {sizeMib} MiB, main budget {budgetMib} MiB, {subHosts} sub-host(s), memory benchmark over the whole VM at the main for {measureSeconds} s, " +
    $"{Environment.ProcessorCount} cores, {DateTime.UtcNow:yyyy-MM-dd HH:mm:ss} UTC, load {File.ReadAllText("/proc/loadavg").Trim()}");

if (args.Contains("--again"))
{
    // Moving a split VM again: pre-copy of the same idle VM from a plain source and from a split main (pages on the
    // sub-hosts read through SplitSourceReader, for each --run-pages), alternating, so they compare as ratios in one run.
    for (int rep = 0; rep < repeats; rep++)
    {
        var plain = await PlainPreCopyAsync(size);
        Console.WriteLine($"repeat {rep}: pre-copy from a plain source {plain.TotalTime.TotalMilliseconds,7:0} ms ({plain.PagesVerified:N0} pages verified)");
        foreach (int run in runPages)
        {
            var (again, calls, fetched) = await SplitAgainAsync(size, budgetPages, subHosts, run);
            Console.WriteLine($"  from a split main, run {run,4} pages: {again.TotalTime.TotalMilliseconds,7:0} ms ({again.PagesVerified:N0} verified) = {again.TotalTime / plain.TotalTime:0.00}x; " +
                $"{fetched:N0} pages fetched from sub-hosts in {calls:N0} RemotePages calls");
        }
    }
    return;
}

foreach (int prefetch in prefetches)
{
    await using var source = await Agent.StartAsync();
    await using var main = await Agent.StartAsync();
    var subs = new Agent[subHosts];
    var subMemory = new GuestMemory[subHosts];
    for (int k = 0; k < subHosts; k++) subs[k] = await Agent.StartAsync();
    using var vm = new GuestMemory(size);
    using var vmMmu = new SoftwareMmu(vm);
    Fill(vmMmu);
    using var target = new GuestMemory(size);
    using var targetMmu = new SoftwareMmu(target);
    string id = $"split-bench-p{prefetch}";
    for (int k = 0; k < subHosts; k++)
    {
        subMemory[k] = new GuestMemory(size);
        SplitSubHost.Accept(subs[k].Pages, id, "vm", subMemory[k]);
    }
    using var mainHost = new SplitMainHost(id, "vm", target, targetMmu, new RemotePagerOptions { BudgetPages = budgetPages, Prefetch = prefetch });
    main.Pages.Accept(mainHost.Incoming);
    try
    {
        var report = await new Split(new SplitOptions { SubHosts = [.. subs.Select(s => s.Address)], MainBudgetPages = budgetPages, SplitMaxRounds = 5 })
            .RunAsync(new MigrationJob { MigrationId = id, Vm = "vm", Memory = vm, Mmu = vmMmu, Destination = main.Address });

        var bench = new MemoryBenchmarkWorkload(new MemoryBenchmarkOptions());
        using var stop = new CancellationTokenSource();
        var sw = Stopwatch.StartNew();
        var run = bench.RunAsync(targetMmu, stop.Token);
        await Task.Delay(TimeSpan.FromSeconds(measureSeconds));
        long bytes = bench.TotalOperations;
        double secs = sw.Elapsed.TotalSeconds;
        stop.Cancel();
        // A vCPU waiting in a remote fault when the stop comes ends with that fault cancelled; the rate is taken already.
        try { await run; }
        catch (PageFaultException) when (stop.IsCancellationRequested) { }
        var pager = mainHost.Pager;
        string perSub = string.Join(", ", Enumerable.Range(0, subHosts).Select(k => $"sub {k}: in {pager.PageInsFrom(k):N0} out {pager.PageOutsTo(k):N0}"));
        Console.WriteLine($"prefetch {prefetch,3}: migration {report.TotalTime.TotalMilliseconds,8:0.0} ms, verified {report.PagesVerified:N0} pages; " +
            $"membench after {bytes / secs / 1e9,6:0.000} GB/s ({secs:0.0} s); remote page-ins {pager.PageIns:N0} = {pager.PageIns / secs,8:N0}/s (prefetched {pager.PagesPrefetched:N0}), page-outs {pager.PageOuts:N0}; {perSub}");
    }
    finally
    {
        foreach (var s in subs) await s.DisposeAsync();
        foreach (var m in subMemory) m?.Dispose();
    }
}

static async Task<MigrationReport> PlainPreCopyAsync(long size)
{
    await using var source = await Agent.StartAsync();
    await using var destination = await Agent.StartAsync();
    using var vm = new GuestMemory(size);
    using var mmu = new SoftwareMmu(vm);
    Fill(mmu);
    using var target = new GuestMemory(size);
    using var targetMmu = new SoftwareMmu(target);
    destination.Pages.Accept(new IncomingMigration("again-plain", "vm", target, targetMmu, new IncomingMigrationOptions()));
    return await new PreCopy(new PreCopyOptions { MaxRounds = 3 })
        .RunAsync(new MigrationJob { MigrationId = "again-plain", Vm = "vm", Memory = vm, Mmu = mmu, Destination = destination.Address });
}

static async Task<(MigrationReport Report, long Calls, long Fetched)> SplitAgainAsync(long size, long budgetPages, int subHosts, int runPages)
{
    await using var source = await Agent.StartAsync();
    await using var main = await Agent.StartAsync();
    await using var final = await Agent.StartAsync();
    var subs = new Agent[subHosts];
    var subMemory = new GuestMemory[subHosts];
    try
    {
        for (int k = 0; k < subHosts; k++)
        {
            subs[k] = await Agent.StartAsync();
            subMemory[k] = new GuestMemory(size);
            SplitSubHost.Accept(subs[k].Pages, "again-split", "vm", subMemory[k]);
        }
        using var vm = new GuestMemory(size);
        using var vmMmu = new SoftwareMmu(vm);
        Fill(vmMmu);
        using var target = new GuestMemory(size);
        using var targetMmu = new SoftwareMmu(target);
        using var mainHost = new SplitMainHost("again-split", "vm", target, targetMmu, new RemotePagerOptions { BudgetPages = budgetPages });
        main.Pages.Accept(mainHost.Incoming);
        await new Split(new SplitOptions { SubHosts = [.. subs.Select(s => s.Address)], MainBudgetPages = budgetPages, SplitMaxRounds = 5 })
            .RunAsync(new MigrationJob { MigrationId = "again-split", Vm = "vm", Memory = vm, Mmu = vmMmu, Destination = main.Address });
        using var moved = new GuestMemory(size);
        using var movedMmu = new SoftwareMmu(moved);
        final.Pages.Accept(new IncomingMigration("again-2", "vm", moved, movedMmu, new IncomingMigrationOptions()));
        using var reader = new SplitSourceReader("vm", target, mainHost.Pager, runPages: runPages);
        var report = await new PreCopy(new PreCopyOptions { MaxRounds = 3 })
            .RunAsync(new MigrationJob { MigrationId = "again-2", Vm = "vm", Memory = target, Mmu = targetMmu, Destination = final.Address, PageReader = reader });
        return (report, reader.Calls, reader.PagesFetched);
    }
    finally
    {
        foreach (var s in subs) if (s is not null) await s.DisposeAsync();
        foreach (var m in subMemory) m?.Dispose();
    }
}

static void Fill(SoftwareMmu mmu)
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

/// <summary>One loopback agent: an RpcServer with a PagesService.</summary>
internal sealed class Agent : IAsyncDisposable
{
    private Agent(RpcServer server, PagesService pages)
    {
        Server = server;
        Pages = pages;
    }

    public RpcServer Server { get; }
    public PagesService Pages { get; }
    public Uri Address => Server.Address;

    public static async Task<Agent> StartAsync()
    {
        var pages = new PagesService();
        var server = new RpcServer(new RpcServerOptions { Port = 0 });
        server.AddService(pages.Definition);
        await server.StartAsync();
        return new Agent(server, pages);
    }

    public ValueTask DisposeAsync() => Server.DisposeAsync();
}
