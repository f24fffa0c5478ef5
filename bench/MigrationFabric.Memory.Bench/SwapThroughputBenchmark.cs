using System.Diagnostics;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Swap;

namespace MigrationFabric.Memory.Bench;

/// <summary>Private-swap page-out and page-in throughput (MB/s) for VMemDirect's asynchronous paging methods 1 and 2 and the naive baseline.</summary>
public sealed class SwapThroughputBenchmark : IMemoryBenchmark
{
    public string Name => "swap-throughput";
    public string Description => "private swap page-out/page-in MB/s: async method 1, async method 2, naive; direct placement MB/s";

    public async Task RunAsync(string[] args, CancellationToken cancellationToken)
    {
        var sizeMiB = args.Length > 0 ? long.Parse(args[0]) : 512;
        var size = sizeMiB << 20;
        var pages = size / Page.Size;
        var share = pages / 4;
        const int randomReads = 2_000;
        var dir = Directory.CreateTempSubdirectory("mf-swap-bench-").FullName;
        Console.WriteLine($"guest memory {sizeMiB} MiB ({pages} pages), share {share} pages (25%), chunk 256 pages, swap file in {dir} (ext4, page cache: buffered I/O)");
        Console.WriteLine("phases: write every page in order (pages out 75%); read every page in order (pages in); read {0} random pages", randomReads);
        Console.WriteLine($"{"mode",-13} {"phase",-10} {"secs",7} {"vCPU MB/s",10} {"out MB/s",9} {"in MB/s",8} {"outs sync/async",17} {"ins sync/async",17} {"faults",7}");
        try
        {
            foreach (var mode in new[] { PagingMode.AsyncMethod1, PagingMode.AsyncMethod2, PagingMode.Naive })
            {
                cancellationToken.ThrowIfCancellationRequested();
                using var memory = new GuestMemory(size);
                await using var pvm = new PrivateVirtualMemory(memory, new PrivateVirtualMemoryOptions
                {
                    Mode = mode,
                    SharePages = share,
                    SwapFilePath = Path.Combine(dir, $"{mode}.swap"),
                });
                using var mmu = new SoftwareMmu(memory, pvm);

                await Phase(mode, "write-seq", pvm, pages, cancellationToken, () => RunVcpu(mmu, cpu =>
                {
                    var buf = new byte[Page.Size];
                    for (long p = 0; p < pages; p++)
                    {
                        BitConverter.TryWriteBytes(buf, p);
                        cpu.Write(p * Page.Size, buf);
                    }
                }));
                await Phase(mode, "read-seq", pvm, pages, cancellationToken, () => RunVcpu(mmu, cpu =>
                {
                    for (long p = 0; p < pages; p++)
                        if (cpu.ReadUInt64(p * Page.Size) != (ulong)p) throw new InvalidOperationException($"{mode}: page {p} came back wrong");
                }));
                await Phase(mode, "read-rand", pvm, randomReads, cancellationToken, () => RunVcpu(mmu, cpu =>
                {
                    var rng = new Random(42);
                    for (var i = 0; i < randomReads; i++)
                    {
                        var p = rng.NextInt64(pages);
                        if (cpu.ReadUInt64(p * Page.Size) != (ulong)p) throw new InvalidOperationException($"{mode}: page {p} came back wrong");
                    }
                }));
            }

            // Direct placement (memory-virtualizing migration's receive side): no paging at all.
            using (var memory = new GuestMemory(size))
            {
                await using var pvm = new PrivateVirtualMemory(memory, new PrivateVirtualMemoryOptions
                {
                    SharePages = share,
                    SwapFilePath = Path.Combine(dir, "placement.swap"),
                });
                var buf = new byte[Page.Size];
                var sw = Stopwatch.StartNew();
                for (long p = 0; p < pages; p++)
                {
                    BitConverter.TryWriteBytes(buf, p);
                    pvm.PlacePage(p, buf);
                }
                sw.Stop();
                var s = pvm.Statistics.Snapshot();
                Console.WriteLine($"placement: {pages} pages in {sw.Elapsed.TotalSeconds:F2} s = {size / 1e6 / sw.Elapsed.TotalSeconds:F0} MB/s " +
                                  $"({s.PlacedInMemory} into memory, {s.PlacedInSwap} into swap, page-ins {s.PageIns}, page-outs {s.PageOuts})");
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static async Task Phase(PagingMode mode, string phase, PrivateVirtualMemory pvm, long pagesTouched, CancellationToken ct, Func<Task> body)
    {
        var before = pvm.Statistics.Snapshot();
        var sw = Stopwatch.StartNew();
        await body();
        var vcpuSecs = sw.Elapsed.TotalSeconds;
        await pvm.SettleAsync(ct);
        var secs = sw.Elapsed.TotalSeconds;
        var after = pvm.Statistics.Snapshot();
        var outs = after.PageOuts - before.PageOuts;
        var ins = after.PageIns - before.PageIns;
        Console.WriteLine($"{mode,-13} {phase,-10} {secs,7:F2} {pagesTouched * (double)Page.Size / 1e6 / vcpuSecs,10:F0} " +
                          $"{outs * (double)Page.Size / 1e6 / secs,9:F0} {ins * (double)Page.Size / 1e6 / secs,8:F0} " +
                          $"{$"{after.PageOutsSync - before.PageOutsSync}/{after.PageOutsAsync - before.PageOutsAsync}",17} " +
                          $"{$"{after.PageInsSync - before.PageInsSync}/{after.PageInsAsync - before.PageInsAsync}",17} {after.Faults - before.Faults,7}");
    }

    private static Task RunVcpu(SoftwareMmu mmu, Action<VirtualCpu> body)
    {
        var tcs = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                using var cpu = mmu.CreateVcpu();
                body(cpu);
                tcs.SetResult();
            }
            catch (Exception e)
            {
                tcs.SetException(e);
            }
        }) { IsBackground = true, Name = "vcpu-swap-bench" };
        thread.Start();
        return tcs.Task;
    }
}
