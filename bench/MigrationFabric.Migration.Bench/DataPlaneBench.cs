using System.Diagnostics;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Migration.Codec;
using MigrationFabric.Rpc.Client;
using MigrationFabric.Rpc.Server;

namespace MigrationFabric.Migration.Bench;

/// <summary>The data plane alone: an idle VM's pre-copy between two agents on loopback over gRPC PageStream calls and over TCP data channels, repeated, alternating with raw TCP moving as many bytes.</summary>
/// <remarks>
/// Besides wall-clock GB/s (which the neighbours' load moves a lot) it reports the process's CPU seconds per GB,
/// bytes allocated per GB and GC counts over the transfer, which move much less with load.
/// </remarks>
internal static class DataPlaneBench
{

    public static async Task RunAsync(long sizeMib, int reps, int streams, int batchPages, uint window, string channels = "both", bool preallocate = true)
    {
        if (channels is not ("both" or "grpc" or "tcp")) throw new ArgumentException($"--channel must be grpc, tcp or both, was '{channels}'.");
        bool grpc = channels != "tcp", tcpChannel = channels != "grpc";
        long size = sizeMib << 20;
        Console.WriteLine($"data-plane bench: idle VM {sizeMib} MiB pre-copy, {streams} streams, {batchPages}-page batches, window {window}, {reps} repetitions of raw TCP, gRPC and TCP data channels in turn, page checksums {(Environment.GetEnvironmentVariable("MF_BENCH_CHECKSUM") == "xxh64" ? "XXH64" : "XXH3")}, destination memory {(preallocate ? "preallocated before each transfer (not in its window)" : "not preallocated (populated run by run on the stream)")}; " +
            $"{Environment.ProcessorCount} cores, {DateTime.UtcNow:yyyy-MM-dd HH:mm:ss} UTC, load {File.ReadAllText("/proc/loadavg").Trim()}, server GC {System.Runtime.GCSettings.IsServerGC}");
        using var source = new GuestMemory(size);
        using var sourceMmu = new SoftwareMmu(source);
        Fill(sourceMmu);
        // Warm-up (not reported): JIT tiers, connection and buffer pools, as in a host agent that has migrated before.
        {
            using var warm = new GuestMemory(Math.Min(size, 128L << 20));
            using var warmMmu = new SoftwareMmu(warm);
            Fill(warmMmu);
            await RawTcpAsync(warm.SizeBytes);
            if (grpc) await MigrateAsync(warm, warmMmu, streams, batchPages, window, "dp-warm-up", verify: true, DataChannel.Grpc, preallocate);
            if (tcpChannel) await MigrateAsync(warm, warmMmu, streams, batchPages, window, "dp-warm-up-tcp", verify: true, DataChannel.Tcp, preallocate);
        }
        var raw = new List<Cost>();
        var moved = new List<Cost>();
        var tcpMoved = new List<Cost>();
        for (int r = 0; r < reps; r++)
        {
            GC.Collect();
            var tcp = await RawTcpAsync(size);
            raw.Add(tcp);
            Console.WriteLine($"  rep {r}: raw TCP {tcp.GBps(size):0.000} GB/s ({tcp.CpuPerGB(size):0.00} CPU s/GB)");
            if (grpc)
            {
                GC.Collect();
                var run = await MigrateAsync(source, sourceMmu, streams, batchPages, window, $"dp-{r}", verify: r == 0, DataChannel.Grpc, preallocate);
                moved.Add(run);
                Console.WriteLine($"         gRPC        {Line(run, tcp)}");
            }
            if (tcpChannel)
            {
                GC.Collect();
                var channel = await MigrateAsync(source, sourceMmu, streams, batchPages, window, $"dp-tcp-{r}", verify: r == 0, DataChannel.Tcp, preallocate);
                tcpMoved.Add(channel);
                Console.WriteLine($"         TCP channel {Line(channel, tcp)}");
            }
        }
        string Line(Cost run, Cost tcp) => $"migration wire {run.GBps(run.Bytes):0.000} GB/s = {run.GBps(run.Bytes) / tcp.GBps(size):0.00} x raw TCP, " +
            $"{run.CpuPerGB(run.Bytes):0.00} CPU s/GB, {run.Allocated / (run.Bytes / 1e9) / 1e6:0} MB allocated/GB, GCs {run.Gen0}/{run.Gen1}/{run.Gen2}" +
            (run.Preallocation > TimeSpan.Zero ? $"; preallocation before it {run.Preallocation.TotalMilliseconds:0} ms, {run.PreallocationCpu.TotalSeconds / (run.Bytes / 1e9):0.00} CPU s/GB" : "");
        double Median(IEnumerable<double> xs) { var s = xs.Order().ToList(); return s.Count % 2 == 1 ? s[s.Count / 2] : (s[s.Count / 2 - 1] + s[s.Count / 2]) / 2; }
        double rawMedian = Median(raw.Select(c => c.GBps(size)));
        foreach (var (name, runs) in new[] { ("gRPC", moved), ("TCP channel", tcpMoved) })
        {
            if (runs.Count == 0) continue;
            double runMedian = Median(runs.Select(c => c.GBps(c.Bytes)));
            Console.WriteLine($"  median {name}: raw TCP {rawMedian:0.000} GB/s, migration wire {runMedian:0.000} GB/s, ratio {runMedian / rawMedian:0.00} (per-rep ratios median {Median(raw.Zip(runs, (t, m) => m.GBps(m.Bytes) / t.GBps(size))):0.00}); " +
                $"CPU s/GB raw {Median(raw.Select(c => c.CpuPerGB(size))):0.00}, migration {Median(runs.Select(c => c.CpuPerGB(c.Bytes))):0.00}");
        }
    }

    // The data plane without a strategy around it: every page once through PageStreamGroup into an IncomingMigration,
    // timed from the first page added to the last batch acknowledged (applied and checksum-verified at the destination).
    private static async Task<Cost> MigrateAsync(GuestMemory source, SoftwareMmu sourceMmu, int streams, int batchPages, uint window, string id, bool verify, DataChannel dataChannel, bool preallocate)
    {
        // The per-page checksum strategies send (MigrationOptions.Checksum's default); MF_BENCH_CHECKSUM=xxh64 for the older one.
        var checksum = Environment.GetEnvironmentVariable("MF_BENCH_CHECKSUM") == "xxh64" ? ChecksumKind.Xxh64 : ChecksumKind.Xxh3;
        var destinationPages = new PagesService();
        await using var listener = destinationPages.StartDataChannels(new MigrationFabric.Migration.DataPlane.Tcp.DataChannelListenerOptions());
        // As a host agent configures it (HostAgentOptions.MaxReceiveMessageSize): 1024-page batches exceed gRPC's default 4 MiB.
        await using var destinationServer = new RpcServer(new RpcServerOptions { Port = 0, MaxReceiveMessageSize = 64 << 20 });
        destinationServer.AddService(destinationPages.Definition);
        await destinationServer.StartAsync();
        using var target = new GuestMemory(source.SizeBytes);
        using var targetMmu = new SoftwareMmu(target);
        var incoming = destinationPages.Accept(new IncomingMigration(id, "vm", target, targetMmu, new IncomingMigrationOptions { Window = window }));
        // As a host agent does at prepare (HostAgentOptions.PreallocateIncomingMemory), before the source starts: not in the transfer's window.
        var preallocationCpu = Process.GetCurrentProcess().TotalProcessorTime;
        if (preallocate && !await incoming.PreallocateAsync(CancellationToken.None)) throw new InvalidOperationException("this kernel cannot preallocate (MADV_POPULATE_WRITE); run with --no-prealloc");
        preallocationCpu = Process.GetCurrentProcess().TotalProcessorTime - preallocationCpu;
        var channels = new RpcChannel[streams];
        for (int i = 0; i < streams; i++) channels[i] = new RpcChannel(destinationServer.Address, new RpcChannelOptions());
        try
        {
            var open = new StreamOpen
            {
                MigrationId = id, Vm = "vm", TotalPages = (ulong)source.PageCount, PageSize = Page.Size,
                Codec = new CodecOptions { Compression = Compression.None, Checksum = checksum },
            };
            await using var group = await PageStreamGroup.OpenAsync(channels, open, batchPages, PageCompression.None, bucket: null, CancellationToken.None, dataChannel);
            var start = Snapshot.Take();
            for (long p = 0; p < source.PageCount; p++) await group.AddAsync(source, p, 1);
            await group.FlushAsync(1, CancellationToken.None);
            // MF_BENCH_MARKS=1: the transfer's window in CLOCK_MONOTONIC seconds (Stopwatch's clock on Linux), to cut a `perf record -k mono` profile to it.
            if (Environment.GetEnvironmentVariable("MF_BENCH_MARKS") == "1")
                Console.WriteLine($"  mark {id} transfer {start.Timestamp / (double)Stopwatch.Frequency:0.000000} {Stopwatch.GetTimestamp() / (double)Stopwatch.Frequency:0.000000}");
            var cost = Snapshot.Take().Since(start, group.Counters.BytesSent) with { Preallocation = incoming.Preallocation, PreallocationCpu = preallocate ? preallocationCpu : TimeSpan.Zero };
            if (incoming.PagesApplied != source.PageCount) throw new InvalidOperationException($"the destination applied {incoming.PagesApplied} of {source.PageCount} pages");
            if (verify)
                for (long p = 0; p < source.PageCount; p++)
                    if (!source.GetPageBytes(p).SequenceEqual(target.GetPageBytes(p))) throw new InvalidOperationException($"page {p} differs at the destination");
            await group.CloseAsync(CancellationToken.None);
            return cost;
        }
        finally
        {
            foreach (var c in channels) c.Dispose();
        }
    }

    private static void Fill(SoftwareMmu mmu)
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

    private static async Task<Cost> RawTcpAsync(long bytes)
    {
        var start = default(Snapshot);
        await RawLoopbackTcp.MoveAsync(bytes, () => start = Snapshot.Take());
        return Snapshot.Take().Since(start, bytes);
    }

    /// <summary>Bytes moved, wall time, and the process's CPU, allocation and GCs over the same interval.</summary>
    private readonly record struct Cost(long Bytes, TimeSpan Elapsed, TimeSpan Cpu, long Allocated, int Gen0, int Gen1, int Gen2)
    {
        /// <summary>Wall and CPU time of the destination's preallocation before the transfer (zero when not preallocated).</summary>
        public TimeSpan Preallocation { get; init; }

        public TimeSpan PreallocationCpu { get; init; }

        public double GBps(long bytes) => bytes / Elapsed.TotalSeconds / 1e9;

        public double CpuPerGB(long bytes) => Cpu.TotalSeconds / (bytes / 1e9);
    }

    private readonly record struct Snapshot(long Timestamp, TimeSpan Cpu, long Allocated, int Gen0, int Gen1, int Gen2)
    {
        public static Snapshot Take() => new(Stopwatch.GetTimestamp(), Process.GetCurrentProcess().TotalProcessorTime, GC.GetTotalAllocatedBytes(precise: false),
            GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2));

        public Cost Since(Snapshot start, long bytes) => new(bytes, Stopwatch.GetElapsedTime(start.Timestamp, Timestamp), Cpu - start.Cpu, Allocated - start.Allocated,
            Gen0 - start.Gen0, Gen1 - start.Gen1, Gen2 - start.Gen2);
    }
}
