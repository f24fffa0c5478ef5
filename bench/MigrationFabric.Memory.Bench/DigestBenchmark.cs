using System.Diagnostics;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Integrity;
using MigrationFabric.Memory.Pages;

namespace MigrationFabric.Memory.Bench;

/// <summary>Per-VM digest speed (XXH64 per page, then over the page digests): what an integrity check at switch-over costs.</summary>
public sealed class DigestBenchmark : IMemoryBenchmark
{
    public string Name => "digest";
    public string Description => "per-VM XXH64 digest over resident guest memory (GB/s), and over never-touched memory";

    public Task RunAsync(string[] args, CancellationToken cancellationToken)
    {
        const long size = 1L << 30;
        using var memory = new GuestMemory(size);
        PageDigest.OfMemory(memory); // warm-up (tiered JIT)
        long t0 = Stopwatch.GetTimestamp();
        ulong zero = PageDigest.OfMemory(memory);
        double zeroSecs = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        var rng = new Random(1);
        for (long p = 0; p < memory.PageCount; p++)
        {
            var dest = memory.BeginInstall(p, PageResidency.Zero);
            rng.NextBytes(dest);
            memory.CompleteInstall(p, PageResidency.Zero);
        }
        var times = new double[5];
        ulong d = 0;
        for (int i = 0; i < times.Length; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            t0 = Stopwatch.GetTimestamp();
            d = PageDigest.OfMemory(memory);
            times[i] = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        }
        Array.Sort(times);
        Console.WriteLine($"guest memory {size >> 20} MiB, {memory.PageCount} pages");
        Console.WriteLine($"  all pages resident (random bytes), median of {times.Length}: {times[2] * 1000:F1} ms = {size / 1e9 / times[2]:F2} GB/s (digest {d:x16})");
        Console.WriteLine($"  all pages Zero (never touched, no hashing of bytes): {zeroSecs * 1000:F1} ms (digest {zero:x16})");
        CompareWithReference(memory);
        return Task.CompletedTask;
    }

    /// <summary>Per-page hashing only, ours vs the C library (Debian libxxhash0) on the same pages, alternating, if it is installed.</summary>
    private static unsafe void CompareWithReference(GuestMemory memory)
    {
        if (!System.Runtime.InteropServices.NativeLibrary.TryLoad("libxxhash.so.0", out var lib)
            || !System.Runtime.InteropServices.NativeLibrary.TryGetExport(lib, "XXH64", out var fn))
        {
            Console.WriteLine("  (libxxhash.so.0 not installed: no reference comparison)");
            return;
        }
        var xxh64 = (delegate* unmanaged<byte*, nuint, ulong, ulong>)fn;
        var ours = new double[5];
        var theirs = new double[5];
        for (int r = 0; r < 5; r++)
        {
            ulong a = 0, b = 0;
            long t0 = Stopwatch.GetTimestamp();
            for (long p = 0; p < memory.PageCount; p++) a ^= Xxh64.Hash(memory.GetPageBytes(p));
            ours[r] = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            t0 = Stopwatch.GetTimestamp();
            for (long p = 0; p < memory.PageCount; p++)
                fixed (byte* page = memory.GetPageBytes(p)) b ^= xxh64(page, Page.Size, 0);
            theirs[r] = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            if (a != b) throw new InvalidOperationException($"our XXH64 disagrees with libxxhash: {a:x16} vs {b:x16}");
        }
        Array.Sort(ours);
        Array.Sort(theirs);
        double gb = memory.SizeBytes / 1e9;
        Console.WriteLine($"  per-page XXH64 only, medians of 5 alternating: ours {gb / ours[2]:F2} GB/s, libxxhash (C) {gb / theirs[2]:F2} GB/s, ratio {ours[2] / theirs[2]:F2}x the C time (results equal)");
    }
}
