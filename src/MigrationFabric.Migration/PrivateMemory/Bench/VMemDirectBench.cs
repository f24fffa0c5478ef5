using System.Diagnostics;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Swap;
using MigrationFabric.Memory.Workloads;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.MultiHost;
using MigrationFabric.Migration.RemotePaging;
using MigrationFabric.Migration.Reporting;
using MigrationFabric.Migration.Strategies;

namespace MigrationFabric.Migration.PrivateMemory.Bench;

/// <summary>Seed 004's experiment scaled to one machine: a VM larger than the destination's budget migrated over loopback data planes by naive swap, VMemDirect, split (main + 1 sub-host) and ideal, idle, active and with a key-value store.</summary>
/// <remarks>
/// Every kind runs the same pre-copy source (<see cref="VMemDirect"/>, or <see cref="Split"/> for split); the
/// destinations differ in where pages go. Used by `mf bench vmemdirect` and the Migration bench program.
/// </remarks>
public sealed class VMemDirectBench(VMemDirectBenchOptions options)
{
    private readonly VMemDirectBenchOptions _options = Validated(options);
    private VMemDirectLink? _link;

    /// <summary>The link the runs use: <see cref="VMemDirectBenchOptions.LinkMbps"/>, or derived from this machine's swap write rate (measured once, at the first run).</summary>
    public VMemDirectLink Link => _link ??= ResolveLink();

    private VMemDirectLink ResolveLink()
    {
        if (_options.LinkMbps is { } mbps) return new VMemDirectLink(mbps > 0 ? mbps * 1e6 / 8 : null, null);
        var disk = SwapWriteProbe.MeasureBytesPerSecond(_options.SwapDirectory, _options.DirectIo, (int)Math.Min(256, _options.SizeMib));
        return new VMemDirectLink(disk * VMemDirectBenchOptions.PaperLinkToSwapWrite, disk);
    }

    private static VMemDirectBenchOptions Validated(VMemDirectBenchOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        return options;
    }

    /// <summary>Keys of the key-value store: its region is about 40% of the budget (288 bytes a key: a 256-byte value and two 16-byte buckets); it starts in the middle of the VM, where neither end's placement favours it.</summary>
    public static int KvKeys(long budgetMib) => (int)Math.Max(1000, (budgetMib << 20) * 2 / 5 / 288);

    // Table (2 buckets of 16 bytes a key, rounded up to a power of two) and 256-byte values, as KeyValueStoreWorkload lays them out.
    private static long KvRegionPages(int keys) =>
        ((long)System.Numerics.BitOperations.RoundUpToPowerOf2((ulong)keys * 2) * 16 + (long)keys * 256) / Page.Size + 2;

    /// <summary>Runs every workload for every kind, <see cref="VMemDirectBenchOptions.Repeat"/> times, reporting each phase to <paramref name="progress"/>.</summary>
    /// <remarks>Repetition r starts the kinds r - 1 places along, so no kind always follows the same one (a slow disk after naive's paging, a warm cache after ideal).</remarks>
    public async Task<IReadOnlyList<VMemDirectRun>> RunAsync(IProgress<string>? progress, CancellationToken cancellationToken)
    {
        progress?.Report($"link: {Link.Describe()}");
        if (_options.WarmUp) await WarmUpAsync(progress, cancellationToken).ConfigureAwait(false);
        var runs = new List<VMemDirectRun>();
        var kinds = _options.Kinds;
        var total = _options.Repeat * _options.Workloads.Count * kinds.Count;
        for (var rep = 1; rep <= _options.Repeat; rep++)
        {
            foreach (var workload in _options.Workloads)
            {
                for (var k = 0; k < kinds.Count; k++)
                {
                    var kind = kinds[(k + rep - 1) % kinds.Count];
                    var tag = $"[{runs.Count + 1}/{total}] {workload} {kind}{(_options.Repeat > 1 ? $" (repetition {rep}/{_options.Repeat})" : "")}";
                    var run = await RunOneAsync(kind, workload, new Progress(tag, progress), cancellationToken).ConfigureAwait(false);
                    runs.Add(run with { Repetition = rep });
                }
            }
        }
        return runs;
    }

    // Each kind once, idle, on a small VM: the measured runs then all find their code paths compiled (the first kind paid for it alone).
    private async Task WarmUpAsync(IProgress<string>? progress, CancellationToken cancellationToken)
    {
        var size = Math.Min(32, _options.SizeMib);
        var warm = new VMemDirectBench(new VMemDirectBenchOptions
        {
            SizeMib = size, BudgetMib = Math.Max(4, size / 4), Kinds = _options.Kinds, Workloads = ["idle"], MeasureAfter = TimeSpan.FromMilliseconds(200),
            MaxRounds = _options.MaxRounds, SwapDirectory = _options.SwapDirectory, DirectIo = _options.DirectIo, LinkMbps = 0,
            DeviceEmulatorMib = Math.Min(_options.DeviceEmulatorMib, Math.Max(4, size / 4) / 2), WarmUp = false,
            AsyncPlacementWrites = _options.AsyncPlacementWrites, HotReserveMib = Math.Min(_options.HotReserveMib, Math.Max(4, size / 4) / 2),
            DataChannel = _options.DataChannel, Preallocate = _options.Preallocate,
        });
        foreach (var kind in _options.Kinds)
            await warm.RunOneAsync(kind, "idle", new Progress($"warm-up {kind}", progress), cancellationToken).ConfigureAwait(false);
    }

    private sealed class Progress(string tag, IProgress<string>? inner) : IProgress<MigrationProgress>
    {
        private readonly Lock _lock = new();
        private Func<(int Destination, int SubHost)>? _tcpChannels;

        // The most TCP data-channel connections each host served at once, sampled at every progress report (the
        // migration's streams are open from before its first report to after its last round): what the run really used.
        public (int Destination, int SubHost) MostTcpChannels { get; private set; }

        public void WatchTcpChannels(Func<(int Destination, int SubHost)> count) => _tcpChannels = count;

        public void Report(string phase) => inner?.Report($"{tag}: {phase}");

        public void Report(MigrationProgress p)
        {
            if (_tcpChannels is { } count)
            {
                var (d, s) = count();
                lock (_lock) MostTcpChannels = (Math.Max(d, MostTcpChannels.Destination), Math.Max(s, MostTcpChannels.SubHost));
            }
            Report($"migrating: {p.Phase} round {p.Round}, {p.BytesSent >> 20} MiB sent, {p.RemainingPages:N0} pages to go, {p.Elapsed.TotalSeconds:0.0} s");
        }
    }

    /// <summary>What a destination <paramref name="kind"/> reserves as fixed RAM by design, which the bench preallocates before its migration starts, and why (the runs' output header lists it).</summary>
    public static string PreallocationOf(string kind) => kind switch
    {
        "ideal" => "the whole destination memory (a destination with room for the VM reserves all of it, as a host agent does at prepare and QEMU's -mem-prealloc)",
        "vmem-direct" or "vmem-direct-m2" =>
            "the VM's fixed physical share (seed 004: private virtual memory is assigned a fixed amount of physical memory), as frames set aside for the first copies direct placement puts in memory (the share less its free reserve), moved under each 64-page block as its first copy lands; and the pager's placement staging buffers (fixed host memory outside the share, 1 MiB each)",
        "naive" => "nothing: plain swap, demand-paged by the kernel in the model; it keeps no frame pool (no staging), and its device emulator's memory is resident from the start",
        "split" => "nothing: the main host's RemotePager takes RAM page by page within its budget (demand-paged, clock page-out, no frame pool); the sub-host holds the part the source's plan gives it when the migration starts and takes RAM only for pages it holds",
        _ => throw new ArgumentException($"unknown kind '{kind}' (known: {string.Join(", ", VMemDirectBenchOptions.KnownKinds)}).", nameof(kind)),
    };

    // The preallocation PreallocationOf describes, as a host agent makes it; returns the bytes given RAM (0: the kernel
    // cannot), or null if the kind preallocates nothing.
    private static async Task<long?> PreallocateFixedAsync(string kind, IncomingMigration? incoming, PrivateMemoryDestination? pvm, CancellationToken cancellationToken) => kind switch
    {
        "ideal" => await incoming!.PreallocateAsync(cancellationToken).ConfigureAwait(false) ? incoming.Memory.PageCount * Page.Size : 0,
        "vmem-direct" or "vmem-direct-m2" => pvm!.Pager.PreallocateStaging()
            + (await incoming!.PreallocateAsync(cancellationToken).ConfigureAwait(false) ? pvm.Placement.ShareFramesPreallocated * Page.Size : 0),
        _ => null,
    };

    /// <summary>Runs one destination <paramref name="kind"/> with one <paramref name="workload"/>.</summary>
    public Task<VMemDirectRun> RunOneAsync(string kind, string workload, IProgress<string>? progress, CancellationToken cancellationToken) =>
        RunOneAsync(kind, workload, new Progress($"{workload} {kind}", progress), cancellationToken);

    private async Task<VMemDirectRun> RunOneAsync(string kind, string workload, Progress progress, CancellationToken cancellationToken)
    {
        if (!VMemDirectBenchOptions.KnownKinds.Contains(kind))
            throw new ArgumentException($"unknown kind '{kind}' (known: {string.Join(", ", VMemDirectBenchOptions.KnownKinds)}).", nameof(kind));
        if (!VMemDirectBenchOptions.KnownWorkloads.Contains(workload))
            throw new ArgumentException($"unknown workload '{workload}' (known: {string.Join(", ", VMemDirectBenchOptions.KnownWorkloads)}).", nameof(workload));
        long size = _options.SizeMib << 20;
        long budgetPages = (_options.BudgetMib << 20) / Page.Size;
        await using var source = await LoopbackHost.StartAsync(cancellationToken).ConfigureAwait(false);
        await using var destination = await LoopbackHost.StartAsync(cancellationToken).ConfigureAwait(false);
        await using var sub = await LoopbackHost.StartAsync(cancellationToken).ConfigureAwait(false);
        using var vm = new GuestMemory(size);
        using var vmMmu = new SoftwareMmu(vm);
        progress.Report($"filling the {_options.SizeMib} MiB VM");
        // The key-value store's region starts zeroed (a guest hands a program zeroed memory): its hash table needs empty buckets.
        var kvRegion = workload == "kv" ? (vm.PageCount / 2, KvRegionPages(KvKeys(_options.BudgetMib))) : (0L, 0L);
        Fill(vmMmu, kvRegion, cancellationToken);

        using var sourceStop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var targetStop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        // Started with the source's workload, after the destination's preallocation (the key-value timeline is on this clock).
        var clock = new Stopwatch();
        Task? sourceRun = null;
        Task? targetRun = null;
        KeyValueStoreWorkload? sourceKv = null, targetKv = null;
        TimeSpan resumedAt = TimeSpan.Zero;
        PagingSnapshot? during = null;
        PrivateMemoryDestination? pvm = null;
        ProcessCpu? cpuAtStart = null, cpuAtResume = null;
        var kvOptions = workload == "kv" ? KvOptions(vm.PageCount) : null;

        using var target = new GuestMemory(size);
        using var subMemory = new GuestMemory(size);
        var incoming = new IncomingMigrationOptions();
        SoftwareMmu? targetMmu = null;
        incoming.Resume = (deviceState, _) =>
        {
            // The VM runs at the destination now: the source's vCPUs stop, the guest program continues here from the
            // registers captured at the pause (the device state travels in the switch-over call, outside private memory).
            resumedAt = clock.Elapsed;
            // Before the source's vCPUs exit (they are paused now): their time is only readable while they live.
            cpuAtResume = ProcessCpu.Read();
            during = pvm?.Pager.Statistics.Snapshot();
            sourceStop.Cancel();
            if (kvOptions is not null)
            {
                targetKv = new KeyValueStoreWorkload(kvOptions());
                targetKv.RestoreState(deviceState.Span);
                targetRun = targetKv.RunAsync(targetMmu!, targetStop.Token);
            }
            return Task.CompletedTask;
        };
        SplitMainHost? main = null;
        IncomingMigration? accepted = null;
        SoftwareMmu? plainMmu = null;
        string id = $"bench-{kind}-{workload}";
        MigrationStrategy strategy;
        switch (kind)
        {
            case "naive" or "vmem-direct" or "vmem-direct-m2":
                var mode = kind == "naive" ? PagingMode.Naive : kind == "vmem-direct-m2" ? PagingMode.AsyncMethod2 : PagingMode.AsyncMethod1;
                var pager = PagerOptions();
                if (mode != PagingMode.Naive) pager.HotReservePages = (int)((_options.HotReserveMib << 20) / Page.Size);
                pvm = new PrivateMemoryDestination(target, budgetPages, mode, pager, (_options.DeviceEmulatorMib << 20) / Page.Size);
                targetMmu = pvm.Mmu;
                accepted = destination.Pages.Accept(pvm.Incoming(id, "vm", incoming));
                strategy = new VMemDirect(new VMemDirectOptions
                {
                    Kind = kind == "naive" ? VirtualizationKind.NaiveSwap : VirtualizationKind.VMemDirect, MaxRounds = _options.MaxRounds, BandwidthCap = LinkCap,
                    DataChannel = _options.DataChannel,
                });
                break;
            case "split":
                targetMmu = plainMmu = new SoftwareMmu(target);
                SplitSubHost.Accept(sub.Pages, id, "vm", subMemory);
                main = new SplitMainHost(id, "vm", target, targetMmu, sub.Address, new RemotePagerOptions { BudgetPages = budgetPages }, incoming);
                destination.Pages.Accept(main.Incoming);
                strategy = SplitStrategy(sub.Address, budgetPages);
                break;
            default:
                targetMmu = plainMmu = new SoftwareMmu(target);
                accepted = destination.Pages.Accept(new IncomingMigration(id, "vm", target, targetMmu, incoming));
                strategy = new VMemDirect(new VMemDirectOptions
                {
                    Kind = VirtualizationKind.Ideal, MaxRounds = _options.MaxRounds, BandwidthCap = LinkCap, DataChannel = _options.DataChannel,
                });
                break;
        }
        try
        {
            // The destination reserves its fixed RAM before the source starts (a host agent's prepare): timed apart, not migration time.
            TimeSpan? preallocation = null;
            long preallocated = 0;
            if (_options.Preallocate)
            {
                var started = Stopwatch.GetTimestamp();
                if (await PreallocateFixedAsync(kind, accepted, pvm, cancellationToken).ConfigureAwait(false) is { } bytes)
                {
                    preallocation = Stopwatch.GetElapsedTime(started);
                    preallocated = bytes;
                    progress.Report($"preallocated {bytes >> 20} MiB in {preallocation.Value.TotalMilliseconds:0} ms");
                }
            }
            clock.Start();
            if (workload == "active")
            {
                sourceRun = new MemoryBenchmarkWorkload(new MemoryBenchmarkOptions { Pages = vm.PageCount / 16 }).RunAsync(vmMmu, sourceStop.Token);
                await Task.Delay(500, cancellationToken).ConfigureAwait(false);
            }
            else if (kvOptions is not null)
            {
                progress.Report($"key-value store on the source for {_options.KvBefore.TotalSeconds:0.#} s");
                sourceKv = new KeyValueStoreWorkload(kvOptions());
                sourceRun = sourceKv.RunAsync(vmMmu, sourceStop.Token);
                await Task.Delay(_options.KvBefore, cancellationToken).ConfigureAwait(false);
            }
            progress.WatchTcpChannels(() => (destination.Pages.DataChannels?.Connections ?? 0, kind == "split" ? sub.Pages.DataChannels?.Connections ?? 0 : 0));
            var migrationStart = clock.Elapsed;
            progress.Report("migrating");
            cpuAtStart = ProcessCpu.Read();
            var report = await strategy.RunAsync(new MigrationJob
            {
                MigrationId = id, Vm = "vm", Memory = vm, Mmu = vmMmu, Destination = destination.Address,
                Progress = progress,
                CaptureDeviceState = sourceKv is null ? null : () => sourceKv.CaptureState(),
            }, cancellationToken).ConfigureAwait(false);
            // MF_BENCH_MARKS=1: the migration's window in CLOCK_MONOTONIC seconds (Stopwatch's clock on Linux), to cut a `perf record -k mono` profile to it.
            if (Environment.GetEnvironmentVariable("MF_BENCH_MARKS") == "1")
                progress.Report($"mark {kind} {workload} migration {(Stopwatch.GetTimestamp() - (long)(report.TotalTime.TotalSeconds * Stopwatch.Frequency)) / (double)Stopwatch.Frequency:0.000000} {Stopwatch.GetTimestamp() / (double)Stopwatch.Frequency:0.000000}");
            // Said where it happens: a pager whose writers could not use io_uring wrote with pwrite, at a higher CPU cost.
            if (pvm?.Pager.PlacementRingRefusal is { } ringRefusal) progress.Report($"{kind}: {ringRefusal}");
            sourceStop.Cancel();
            if (sourceRun is not null) await sourceRun.ConfigureAwait(false);

            double? membench = null;
            if (kvOptions is null)
            {
                progress.Report($"memory benchmark over the whole VM at the destination for {_options.MeasureAfter.TotalSeconds:0.#} s");
                membench = await MeasureMembenchAsync(targetMmu, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                progress.Report($"key-value store at the destination for {_options.KvAfter.TotalSeconds:0.#} s");
                await Task.Delay(_options.KvAfter, cancellationToken).ConfigureAwait(false);
                targetStop.Cancel();
                await EndAsync(targetRun, targetStop).ConfigureAwait(false);
            }
            var after = pvm?.Pager.Statistics.Snapshot();
            return new VMemDirectRun(
                kind, workload, report.TotalTime, report.Downtime, report.Rounds.Count, report.BytesSent, report.PagesVerified, membench,
                during, after is { } a && during is { } d ? a.Since(d) : null,
                main is null ? null : (main.Pager.PageIns, main.Pager.PageOuts),
                sourceKv is null ? [] : Timeline(sourceKv, targetKv, resumedAt),
                migrationStart, resumedAt, targetKv?.CorruptReads ?? 0, report.Rounds, report.DataChannel, pvm?.DeviceEmulator?.PageInTime,
                preallocation, preallocated, progress.MostTcpChannels.Destination, progress.MostTcpChannels.SubHost,
                cpuAtResume is { } resumed && cpuAtStart is { } started0 ? resumed.Since(started0) : null);
        }
        finally
        {
            sourceStop.Cancel();
            targetStop.Cancel();
            await EndAsync(sourceRun, sourceStop).ConfigureAwait(false);
            await EndAsync(targetRun, targetStop).ConfigureAwait(false);
            main?.Dispose();
            plainMmu?.Dispose();
            if (pvm is not null) await pvm.DisposeAsync().ConfigureAwait(false);
        }
    }

    // The split baseline's construction, in one place (its options are changing to a list of sub-hosts).
    private Split SplitStrategy(Uri subHost, long budgetPages) =>
        new(new SplitOptions
        {
            SubHosts = [subHost], MainBudgetPages = budgetPages, SplitMaxRounds = _options.MaxRounds, BandwidthCap = LinkCap, DataChannel = _options.DataChannel,
        });

    private long? LinkCap => Link.BytesPerSecond is { } b ? (long)b : null;

    private PrivateVirtualMemoryOptions PagerOptions() => new()
    {
        SwapFilePath = _options.SwapDirectory is { } d ? Path.Combine(d, $"mf-bench-{Guid.NewGuid():N}.swap") : null,
        DirectIo = _options.DirectIo,
        AsyncPlacementWrites = _options.AsyncPlacementWrites,
        PrewriteSwapFile = _options.PrewriteSwap,
        PlacementWritesOnIoUring = _options.PlacementRings,
    };

    private Func<KeyValueStoreOptions> KvOptions(long pageCount)
    {
        var keys = KvKeys(_options.BudgetMib);
        return () => new KeyValueStoreOptions
        {
            Keys = keys, StartPage = pageCount / 2, Vcpus = 1, SampleInterval = TimeSpan.FromMilliseconds(200),
        };
    }

    private async Task<double> MeasureMembenchAsync(SoftwareMmu mmu, CancellationToken cancellationToken)
    {
        var bench = new MemoryBenchmarkWorkload(new MemoryBenchmarkOptions());
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var sw = Stopwatch.StartNew();
        var run = bench.RunAsync(mmu, stop.Token);
        await Task.Delay(_options.MeasureAfter, cancellationToken).ConfigureAwait(false);
        long bytes = bench.TotalOperations;
        double secs = sw.Elapsed.TotalSeconds;
        stop.Cancel();
        await EndAsync(run, stop).ConfigureAwait(false);
        return bytes / secs;
    }

    private static async Task EndAsync(Task? run, CancellationTokenSource stop)
    {
        if (run is null) return;
        // A vCPU waiting in a fault (remote or swap) when the stop comes ends with that fault cancelled: that is the stop.
        try { await run.ConfigureAwait(false); }
        catch (PageFaultException) when (stop.IsCancellationRequested) { }
        catch (OperationCanceledException) when (stop.IsCancellationRequested) { }
    }

    private static ThroughputSample[] Timeline(KeyValueStoreWorkload source, KeyValueStoreWorkload? target, TimeSpan resumedAt)
    {
        var before = source.Timeline.Snapshot();
        var after = target?.Timeline.Snapshot() ?? [];
        var all = new List<ThroughputSample>(before.Length + after.Length);
        foreach (var s in before)
        {
            if (s.Elapsed <= resumedAt) all.Add(s);
        }
        foreach (var s in after) all.Add(s with { Elapsed = s.Elapsed + resumedAt });
        return [.. all];
    }

    // Every page gets distinct non-zero bytes, so the whole VM crosses the wire (no zero-page shortcut).
    private static void Fill(SoftwareMmu mmu, (long Start, long Pages) skip, CancellationToken cancellationToken)
    {
        using var cpu = mmu.CreateVcpu();
        Span<byte> page = stackalloc byte[Page.Size];
        for (long p = 0; p < mmu.Memory.PageCount; p++)
        {
            if ((p & 4095) == 0) cancellationToken.ThrowIfCancellationRequested();
            if (p >= skip.Start && p < skip.Start + skip.Pages) continue;
            page.Fill((byte)(p * 7 + 1));
            BitConverter.TryWriteBytes(page, p);
            cpu.Write(p << Page.Shift, page);
        }
    }
}
