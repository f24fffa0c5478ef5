using System.Diagnostics;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Workloads;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.DataPlane.FaultChannel;
using MigrationFabric.Migration.Reporting;
using MigrationFabric.Migration.Strategies;
using MigrationFabric.Rpc.Server;

// Migration bench: 1 GiB (or --size-mib) VMs between two agents on loopback, pre-copy idle and hot-set,
// post-copy remote fault latency, and raw loopback TCP measured in the same run as the reference.
long sizeMib = 1024;
if (Environment.GetEnvironmentVariable("MF_BENCH_MIN_THREADS") is { } minThreads) ThreadPool.SetMinThreads(int.Parse(minThreads), int.Parse(minThreads));
for (int i = 0; i < args.Length - 1; i++)
    if (args[i] == "--size-mib") sizeMib = long.Parse(args[i + 1]);
long size = sizeMib << 20;
// --no-prealloc: destinations populate their memory run by run on the page stream instead of before the start (as host agents with PreallocateIncomingMemory = false).
bool preallocate = !args.Contains("--no-prealloc");

if (args.Contains("--vmemdirect"))
{
    var options = new MigrationFabric.Migration.PrivateMemory.Bench.VMemDirectBenchOptions { SizeMib = sizeMib, BudgetMib = sizeMib / 4 };
    for (int i = 0; i < args.Length - 1; i++)
    {
        if (args[i] == "--budget-mib") options.BudgetMib = long.Parse(args[i + 1]);
        if (args[i] == "--kinds") options.Kinds = args[i + 1].Split(',');
        if (args[i] == "--workloads") options.Workloads = args[i + 1].Split(',');
        if (args[i] == "--swap-dir") options.SwapDirectory = args[i + 1];
    }
    options.DirectIo = args.Contains("--direct-io");
    options.Validate();
    await MigrationFabric.Migration.Bench.VMemDirectBenchRunner.RunAsync(options);
    return;
}

if (args.Contains("--dataplane"))
{
    // The data plane alone (PageStreamGroup -> PagesService -> IncomingMigration), warm, repeated, alternating with raw TCP.
    int Arg(string name, int fallback) { for (int i = 0; i < args.Length - 1; i++) if (args[i] == name) return int.Parse(args[i + 1]); return fallback; }
    // --channel grpc|tcp runs one data channel only (for a profile); both by default.
    int channelAt = Array.IndexOf(args, "--channel");
    string channels = channelAt >= 0 && channelAt + 1 < args.Length ? args[channelAt + 1] : "both";
    await MigrationFabric.Migration.Bench.DataPlaneBench.RunAsync(sizeMib, Arg("--reps", 3), Arg("--streams", 4), Arg("--batch-pages", 256), (uint)Arg("--window", 8), channels, preallocate);
    return;
}

if (args.Contains("--postcopy"))
{
    // Post-copy remote-fault latency only: one migration per push cap (MiB/s, 0 = uncapped), each step of a fault in its own histogram.
    string caps = "0,256";
    for (int i = 0; i < args.Length - 1; i++)
        if (args[i] == "--push-caps") caps = args[i + 1];
    Console.WriteLine($"post-copy fault bench: VM {sizeMib} MiB, {Environment.ProcessorCount} cores, {DateTime.UtcNow:yyyy-MM-dd HH:mm:ss} UTC, load {File.ReadAllText("/proc/loadavg").Trim()}");
    string holds = "";
    for (int i = 0; i < args.Length - 1; i++)
        if (args[i] == "--fault-hold-ms") holds = args[i + 1];
    string batches = "";
    for (int i = 0; i < args.Length - 1; i++)
        if (args[i] == "--batch-pages") batches = args[i + 1];
    // Batches in flight per push stream that the destination grants (IncomingMigrationOptions.Window; default 8).
    string windows = "";
    for (int i = 0; i < args.Length - 1; i++)
        if (args[i] == "--window") windows = args[i + 1];
    // How faults reach the source (PostCopyOptions.FaultTransport): the fault channel (tcp) and RemotePages calls (grpc), alternating per cap.
    string transports = "tcp,grpc";
    for (int i = 0; i < args.Length - 1; i++)
        if (args[i] == "--fault-transports") transports = args[i + 1];
    // Warm-up (not reported): the first migration in a process runs cold (tier-0) code on every path.
    await MigrateAsync(64L << 20, "hotset", new PostCopy(), postCopyWorkload: true);
        foreach (var cap in caps.Split(','))
        foreach (var hold in holds.Split(',', StringSplitOptions.RemoveEmptyEntries).DefaultIfEmpty(""))
            foreach (var batch in batches.Split(',', StringSplitOptions.RemoveEmptyEntries).DefaultIfEmpty(""))
                foreach (var window in windows.Split(',', StringSplitOptions.RemoveEmptyEntries).DefaultIfEmpty(""))
                    foreach (var transport in transports.Split(',', StringSplitOptions.RemoveEmptyEntries))
                        await PostCopyAsync(size, long.Parse(cap), hold == "" ? null : double.Parse(hold, System.Globalization.CultureInfo.InvariantCulture), batch == "" ? null : int.Parse(batch),
                            window == "" ? null : uint.Parse(window), Enum.Parse<RemoteFaultTransport>(transport, ignoreCase: true));
    return;
}

if (args.Contains("--codec"))
{
    CodecThroughput(256L << 20);
    return;
}

// The pre-copy runs' data channel: --channel grpc|tcp (default tcp, as between host agents: HostAgentOptions.DataChannel).
int channelArg = Array.IndexOf(args, "--channel");
var dataChannel = channelArg >= 0 && channelArg + 1 < args.Length && args[channelArg + 1] == "grpc" ? DataChannel.Grpc : DataChannel.Tcp;
Console.WriteLine($"migration bench: VM {sizeMib} MiB, data channel {dataChannel}, {Environment.ProcessorCount} cores, {DateTime.UtcNow:yyyy-MM-dd HH:mm:ss} UTC, load {File.ReadAllText("/proc/loadavg").Trim()}");

// --reps N: each scenario N times, each run against raw TCP measured just before it (the yardstick moves with the neighbours' load).
int preCopyReps = 1;
for (int i = 0; i < args.Length - 1; i++)
    if (args[i] == "--reps") preCopyReps = int.Parse(args[i + 1]);
long rawBytes = Math.Min(size, 2L << 30);
double rawAtStart = await RawTcpAsync(2L << 30);
Console.WriteLine($"raw loopback TCP at the start (one socket pair, 1 MiB writes, 2 GiB): {rawAtStart / 1e9:0.000} GB/s");
// Warm-up (not reported): a host agent that has migrated before runs optimized code; the first migration in a process runs tier-0 code on every path.
await MigrateAsync(64L << 20, "idle", new PreCopy(new PreCopyOptions { DataChannel = dataChannel }), postCopyWorkload: false);

var ratios = new Dictionary<string, List<double>>();
var startRatios = new Dictionary<string, List<double>>();
for (int rep = 0; rep < preCopyReps; rep++)
    foreach (var scenario in new[] { "idle", "hotset" })
    {
        double tcp = await RawTcpAsync(rawBytes);
        Console.WriteLine($"raw loopback TCP just before (one socket pair, 1 MiB writes, {rawBytes >> 20} MiB): {tcp / 1e9:0.000} GB/s");
        var (report, _, incoming, _) = await MigrateAsync(size, scenario, new PreCopy(new PreCopyOptions { DataChannel = dataChannel }), postCopyWorkload: false);
        double wire = report.BytesSent / report.TransferTime.TotalSeconds;
        (ratios.TryGetValue(scenario, out var list) ? list : ratios[scenario] = []).Add(wire / tcp);
        (startRatios.TryGetValue(scenario, out var atStart) ? atStart : startRatios[scenario] = []).Add(wire / rawAtStart);
        Console.WriteLine($"pre-copy {scenario,-6}: total {report.TotalTime.TotalMilliseconds,8:0.0} ms, downtime {report.Downtime.TotalMilliseconds,7:0.00} ms, " +
            $"rounds {report.Rounds.Count}, bytes {report.BytesSent,13:N0}, pages {report.PagesSent:N0} (zero {report.ZeroPagesSent:N0}), " +
            $"wire {wire / 1e9:0.000} GB/s = {wire / tcp:0.00} x raw TCP just before ({wire / rawAtStart:0.00} x at the start), verified {report.PagesVerified:N0} pages" +
            (incoming.IsPreallocated ? $"; destination preallocated before the start in {incoming.Preallocation.TotalMilliseconds:0} ms" : "; destination not preallocated"));
        foreach (var r in report.Rounds)
            Console.WriteLine($"    round {r.Round}: {r.Pages,8:N0} pages {r.Bytes,13:N0} B in {r.Duration.TotalMilliseconds,8:0.0} ms, dirtied meanwhile {r.DirtiedDuringRound:N0}, throttle {r.Throttle:0.00}");
    }
if (preCopyReps > 1)
    foreach (var (scenario, list) in ratios)
    {
        list.Sort();
        var first = startRatios[scenario];
        first.Sort();
        Console.WriteLine($"pre-copy {scenario}: wire x raw TCP over {list.Count} runs: just before min {list[0]:0.00}, median {list[list.Count / 2]:0.00}, max {list[^1]:0.00}; " +
            $"at the start min {first[0]:0.00}, median {first[first.Count / 2]:0.00}, max {first[^1]:0.00}");
    }

await PostCopyAsync(size, 256, null, null);

async Task PostCopyAsync(long size, long capMib, double? holdMs, int? batchPages, uint? window = null, RemoteFaultTransport transport = RemoteFaultTransport.Grpc)
{
    var options = new PostCopyOptions { BandwidthCap = capMib > 0 ? capMib << 20 : null, FaultTransport = transport };
    if (batchPages is { } b) options.BatchPages = b;
    var hold = holdMs is { } ms ? TimeSpan.FromMilliseconds(ms) : (TimeSpan?)null;
    var (report, mmu, incoming, serving) = await MigrateAsync(size, "hotset", new PostCopy(options), postCopyWorkload: true, hold, window);
    var faults = mmu.FaultLatency;
    string cap = (transport == RemoteFaultTransport.Tcp ? "faults on the fault channel, " : "faults as RemotePages calls, ") + (capMib > 0 ? $"push capped at {capMib} MiB/s" : "push uncapped") + (hold is { } h ? $", destination holds the push up to {h.TotalMilliseconds:0.###} ms per batch while a fault is out" : "") + $", {options.BatchPages}-page batches" + (window is { } w ? $", window {w} batches per stream" : "");
    Console.WriteLine($"post-copy hotset ({cap}): total {report.TotalTime.TotalMilliseconds:0.0} ms, downtime {report.Downtime.TotalMilliseconds:0.00} ms, " +
        $"bytes {report.BytesSent:N0}, remote faults {report.RemoteFaults:N0} (pages served to faults {report.PagesServedToFaults:N0}), " +
        $"fault latency p50 {report.RemoteFaultP50.TotalMicroseconds:0} us, p99 {report.RemoteFaultP99.TotalMicroseconds:0} us " +
        $"(destination MMU view incl. coalesced waiters and the vCPU's wake-up: p50 {faults.P50.TotalMicroseconds:0} us, p99 {faults.P99.TotalMicroseconds:0} us), verified {report.PagesVerified:N0} pages" +
        (incoming.IsPreallocated ? $"; destination preallocated in {incoming.Preallocation.TotalMilliseconds:0} ms before the start" : "; destination not preallocated"));
    var steps = incoming.RemoteFaultSteps;
    Console.WriteLine("    fault steps (us)             count      p50      p99      max");
    Step("destination: enter -> sent", steps.Issue);
    Step("sent -> source received", steps.Request);
    Step("source received -> read", steps.Read);
    Step("source read -> reply written", serving.Write);
    Step("source read -> dest got reply", steps.Reply);
    Step("dest got reply -> installed", steps.Install);
    Step("handler total", steps.Total);
    Step("vCPU: handler call -> runs", mmu.HandlerCallLatency);
    Step("vCPU: fault -> runs (MMU)", mmu.FaultLatency);

    static void Step(string name, MigrationFabric.Memory.Metrics.LatencyHistogram h) =>
        Console.WriteLine($"    {name,-30} {h.Count,6} {h.PercentileNanoseconds(0.5) / 1e3,8:0} {h.PercentileNanoseconds(0.99) / 1e3,8:0} {h.MaxNanoseconds / 1e3,8:0}");
}

async Task<(MigrationReport Report, SoftwareMmu TargetMmu, IncomingMigration Incoming, RemotePagesServing Serving)> MigrateAsync(long size, string scenario, MigrationStrategy strategy, bool postCopyWorkload, TimeSpan? faultHold = null, uint? window = null)
{
    var sourcePages = new PagesService();
    var destinationPages = new PagesService();
    await using var sourceServer = new RpcServer(new RpcServerOptions { Port = 0 });
    await using var destinationServer = new RpcServer(new RpcServerOptions { Port = 0 });
    sourceServer.AddService(sourcePages.Definition);
    destinationServer.AddService(destinationPages.Definition);
    await sourceServer.StartAsync();
    await destinationServer.StartAsync();
    // The pages travel on TCP data channels (MigrationOptions.DataChannel's default), as between host agents.
    await using var dataChannels = destinationPages.StartDataChannels(new MigrationFabric.Migration.DataPlane.Tcp.DataChannelListenerOptions());
    using var source = new GuestMemory(size);
    using var sourceMmu = new SoftwareMmu(source);
    using var target = new GuestMemory(size);
    using var targetMmu = new SoftwareMmu(target);
    Fill(sourceMmu);
    using var stop = new CancellationTokenSource();
    Workload workload = scenario == "idle" ? new IdleWorkload() : new HotSetWorkload(new HotSetOptions());
    var running = workload.RunAsync(sourceMmu, stop.Token);
    await Task.Delay(1000);
    Task? targetRunning = null;
    string id = $"bench-{scenario}-{strategy.Name}";
    var incoming = destinationPages.Accept(new IncomingMigration(id, "vm", target, targetMmu, new IncomingMigrationOptions
    {
        FaultPriorityHold = faultHold ?? new IncomingMigrationOptions().FaultPriorityHold,
        Window = window ?? new IncomingMigrationOptions().Window,
        Resume = (_, _) =>
        {
            if (postCopyWorkload) targetRunning = new HotSetWorkload(new HotSetOptions { TargetDirtyPagesPerSecond = 0 }).RunAsync(targetMmu, stop.Token);
            return Task.CompletedTask;
        },
    }));
    // As a host agent does at prepare (HostAgentOptions.PreallocateIncomingMemory), before the source starts; --no-prealloc leaves it to the stream.
    if (preallocate) await incoming.PreallocateAsync(CancellationToken.None);
    var report = await strategy.RunAsync(new MigrationJob
    {
        MigrationId = id, Vm = "vm", Memory = source, Mmu = sourceMmu, Destination = destinationServer.Address,
        LocalPages = sourcePages, LocalAddress = sourceServer.Address,
    });
    stop.Cancel();
    await running;
    if (targetRunning is not null) await targetRunning;
    return (report, targetMmu, incoming, sourcePages.RemotePagesServed);
}

// Encode (copy + zero check + XXH64) and decode (copy + XXH64) of random pages, one thread, no network.
static void CodecThroughput(long bytes)
{
    var pages = new byte[64 * Page.Size];
    new Random(3).NextBytes(pages);
    var dest = new byte[Page.Size];
    long n = bytes / Page.Size;
    var clock = new Stopwatch();
    var kinds = new[] { MigrationFabric.Memory.Integrity.PageDigestKind.Xxh64, MigrationFabric.Memory.Integrity.PageDigestKind.Xxh3 };
    // Encode and decode+verify with each per-page checksum kind (MigrationOptions.Checksum). Each kind runs three times,
    // interleaved, and the best run is printed: the first pass also pays the pool's fresh buffers, and the machine is shared.
    var encode = new double[kinds.Length];
    var decode = new double[kinds.Length];
    Array.Fill(encode, double.MaxValue);
    Array.Fill(decode, double.MaxValue);
    for (int pass = 0; pass < 3; pass++)
        for (int k = 0; k < kinds.Length; k++)
        {
            var builder = new MigrationFabric.Migration.Codec.PageBatchBuilder(256, checksum: kinds[k]);
            double encodeSecs = 0, decodeSecs = 0;
            for (long p = 0; p < n; p += 256)
            {
                clock.Restart();
                for (int i = 0; i < 256; i++) builder.AddPage(p + i, pages.AsSpan((i & 63) * Page.Size, Page.Size));
                using var batch = builder.Build(1);
                encodeSecs += clock.Elapsed.TotalSeconds;
                clock.Restart();
                var reader = new MigrationFabric.Migration.Codec.PageBatchReader(batch.Batch, n, kinds[k]);
                while (reader.TryRead(out var e)) e.DecodeInto(dest);
                decodeSecs += clock.Elapsed.TotalSeconds;
            }
            encode[k] = Math.Min(encode[k], encodeSecs);
            decode[k] = Math.Min(decode[k], decodeSecs);
        }
    for (int k = 0; k < kinds.Length; k++)
        Console.WriteLine($"codec {kinds[k],-5}, {bytes >> 20} MiB of random pages, one thread, best of 3: encode {bytes / encode[k] / 1e9:0.000} GB/s, decode+verify {bytes / decode[k] / 1e9:0.000} GB/s");
    // Each hash alone over the same pages, also best of 3 interleaved runs.
    ulong sink = 0;
    double xxh64Secs = double.MaxValue, xxh3Secs = double.MaxValue;
    for (int pass = 0; pass < 3; pass++)
    {
        clock.Restart();
        for (long p = 0; p < n; p++) sink += MigrationFabric.Memory.Integrity.Xxh64.Hash(pages.AsSpan((int)(p & 63) * Page.Size, Page.Size));
        xxh64Secs = Math.Min(xxh64Secs, clock.Elapsed.TotalSeconds);
        clock.Restart();
        for (long p = 0; p < n; p++) sink += MigrationFabric.Memory.Integrity.Xxh3.Hash(pages.AsSpan((int)(p & 63) * Page.Size, Page.Size));
        xxh3Secs = Math.Min(xxh3Secs, clock.Elapsed.TotalSeconds);
    }
    string simd = System.Runtime.Intrinsics.X86.Avx2.IsSupported ? "AVX2" : System.Runtime.Intrinsics.X86.Sse2.IsSupported ? "SSE2" : "scalar";
    Console.WriteLine($"page hash alone, {bytes >> 20} MiB, one thread, best of 3: XXH64 {bytes / xxh64Secs / 1e9:0.000} GB/s, XXH3 ({simd}) {bytes / xxh3Secs / 1e9:0.000} GB/s = {xxh64Secs / xxh3Secs:0.00} x XXH64 (sink {sink:x16}); load {File.ReadAllText("/proc/loadavg").Trim()}");
}

// Every page gets distinct non-zero bytes, so the whole VM crosses the wire (no zero-page shortcut).
static void Fill(SoftwareMmu mmu)
{
    using var cpu = mmu.CreateVcpu();
    var page = new byte[Page.Size];
    new Random(1).NextBytes(page);
    for (long p = 0; p < mmu.Memory.PageCount; p++)
    {
        BitConverter.TryWriteBytes(page, p);
        cpu.Write(p << Page.Shift, page);
    }
}

static async Task<double> RawTcpAsync(long bytes)
{
    var clock = new Stopwatch();
    await RawLoopbackTcp.MoveAsync(bytes, clock.Start);
    return bytes / clock.Elapsed.TotalSeconds;
}
