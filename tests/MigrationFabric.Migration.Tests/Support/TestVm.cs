using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Integrity;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Workloads;

namespace MigrationFabric.Migration.Tests.Support;

/// <summary>An emulated VM for tests: guest memory, its MMU, and optionally a running workload.</summary>
public sealed class TestVm : IDisposable
{
    private readonly CancellationTokenSource _stop = new();

    public TestVm(long bytes)
    {
        Memory = new GuestMemory(bytes);
        Mmu = new SoftwareMmu(Memory);
    }

    public GuestMemory Memory { get; }

    public SoftwareMmu Mmu { get; }

    public Workload? Workload { get; private set; }

    public Task? Running { get; private set; }

    public DateTimeOffset StartedAt { get; private set; }

    public void Start(Workload workload)
    {
        Workload = workload;
        StartedAt = DateTimeOffset.UtcNow;
        Running = workload.RunAsync(Mmu, _stop.Token);
    }

    /// <summary>Writes a recognisable pattern into every <paramref name="stride"/>-th page (through a vCPU, so residency and dirty bits are real).</summary>
    public void Fill(int stride = 1, int seed = 7)
    {
        using var cpu = Mmu.CreateVcpu();
        var page = new byte[Page.Size];
        var rng = new Random(seed);
        for (long p = 0; p < Memory.PageCount; p += stride)
        {
            rng.NextBytes(page.AsSpan(0, 64));
            BitConverter.TryWriteBytes(page.AsSpan(64), p);
            cpu.Write(p << Page.Shift, page);
        }
    }

    public ulong Digest() => PageDigest.OfMemory(Memory);

    /// <summary>Waits until the workload has done at least <paramref name="operations"/> more operations.</summary>
    public async Task WaitForProgressAsync(long operations, TimeSpan timeout)
    {
        long target = Workload!.TotalOperations + operations;
        var deadline = DateTime.UtcNow + timeout;
        while (Workload.TotalOperations < target)
        {
            if (Running!.IsFaulted) await Running;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"workload {Workload.Name} did only {Workload.TotalOperations} of {target} operations in {timeout}.");
            await Task.Delay(20);
        }
    }

    public async Task StopWorkloadAsync()
    {
        _stop.Cancel();
        if (Running is not null) await Running;
    }

    public void Dispose()
    {
        _stop.Cancel();
        try { Running?.Wait(TimeSpan.FromSeconds(10)); } catch (AggregateException) { }
        Mmu.Dispose();
        Memory.Dispose();
        _stop.Dispose();
    }
}
