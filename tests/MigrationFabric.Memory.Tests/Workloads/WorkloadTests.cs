using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Tests.Support;
using MigrationFabric.Memory.Workloads;
using Xunit;

namespace MigrationFabric.Memory.Tests.Workloads;

public class WorkloadTests
{
    private const long Size = 16L << 20;

    /// <summary>Runs until the timeline has <paramref name="samples"/> samples and <paramref name="until"/> holds, then stops it.</summary>
    private static async Task RunUntil(Workload w, SoftwareMmu mmu, int samples, Func<bool>? until = null)
    {
        using var cts = new CancellationTokenSource();
        var run = w.RunAsync(mmu, cts.Token);
        var deadline = DateTime.UtcNow + VcpuThread.Generous;
        while ((w.Timeline.Count < samples || (until is not null && !until())) && DateTime.UtcNow < deadline && !run.IsCompleted)
            await Task.Delay(20);
        cts.Cancel();
        await run.WaitAsync(VcpuThread.Generous);
        Assert.True(w.Timeline.Count >= samples, $"{w.Name}: only {w.Timeline.Count} samples");
    }

    [Fact]
    public async Task Idle_reports_zero_throughput_and_dirties_nothing()
    {
        using var m = new GuestMemory(Size);
        using var mmu = new SoftwareMmu(m);
        var w = new IdleWorkload();
        await RunUntil(w, mmu, 2);
        Assert.All(w.Timeline.Snapshot(), s => Assert.Equal(0, s.PerSecond));
        Assert.Equal(0, m.Dirty.CountSet());
        Assert.Equal("ops/s", w.Timeline.Unit);
    }

    [Fact]
    public async Task Memory_benchmark_sweeps_all_memory_and_reports_bytes_per_second_every_100ms()
    {
        using var m = new GuestMemory(Size);
        using var mmu = new SoftwareMmu(m);
        var w = new MemoryBenchmarkWorkload(new MemoryBenchmarkOptions { Vcpus = 2 });
        await RunUntil(w, mmu, 3, () => w.Sweeps >= 4);
        var samples = w.Timeline.Snapshot();
        Assert.Equal("bytes/s", w.Timeline.Unit);
        Assert.Contains(samples, s => s.PerSecond > 0);
        for (int i = 1; i < samples.Length; i++) Assert.True(samples[i].Elapsed > samples[i - 1].Elapsed);
        Assert.InRange(samples[0].Elapsed.TotalMilliseconds, 50, 5000);
        Assert.Equal(m.PageCount, m.ResidentPages);
        Assert.Equal(m.PageCount, m.Dirty.CountSet());
        Assert.True(w.TotalOperations >= 4 * Size / 2);
    }

    [Fact]
    public async Task Hot_set_writes_only_inside_its_working_set_near_the_target_rate()
    {
        using var m = new GuestMemory(Size);
        using var mmu = new SoftwareMmu(m);
        var w = new HotSetWorkload(new HotSetOptions { WorkingSetFraction = 0.25, TargetDirtyPagesPerSecond = 2000 });
        var started = DateTime.UtcNow;
        await RunUntil(w, mmu, 3);
        var elapsed = (DateTime.UtcNow - started).TotalSeconds;
        Assert.Equal(1024, w.WorkingSetPages);
        var counter = new MaxPage();
        m.Dirty.ForEachSet(ref counter);
        Assert.True(counter.Max < 1024, $"wrote page {counter.Max} outside the working set");
        Assert.True(counter.Count > 0);
        // paced: never more than the target over the run (plus one pacing step of slack)
        Assert.True(w.TotalOperations <= 2000 * elapsed + 200, $"{w.TotalOperations} writes in {elapsed:F2}s exceeds 2000/s");
        Assert.Contains(w.Timeline.Snapshot(), s => s.PerSecond > 0);
    }

    private struct MaxPage : Memory.Tracking.IPageVisitor
    {
        public long Max, Count;
        public void Visit(long page) { Max = Math.Max(Max, page); Count++; }
    }

    [Fact]
    public async Task Key_value_store_gets_return_what_sets_stored()
    {
        using var m = new GuestMemory(Size);
        using var mmu = new SoftwareMmu(m);
        var w = new KeyValueStoreWorkload(new KeyValueStoreOptions { Keys = 2000, ValueBytes = 128, Vcpus = 2 });
        await RunUntil(w, mmu, 3, () => w.Gets > 20_000 && w.Sets > 2000);
        Assert.Equal(0, w.CorruptReads);
        Assert.Null(w.FirstCorruption);
        Assert.Equal(0, w.Misses);
        Assert.Contains(w.Timeline.Snapshot(), s => s.PerSecond > 0);
    }

    [Fact]
    public async Task Key_value_store_detects_values_changed_behind_its_back()
    {
        using var m = new GuestMemory(Size);
        using var mmu = new SoftwareMmu(m);
        var w = new KeyValueStoreWorkload(new KeyValueStoreOptions { Keys = 100, ValueBytes = 64, GetFraction = 1.0 });
        using var cts = new CancellationTokenSource();
        var run = w.RunAsync(mmu, cts.Token);
        Assert.True(SpinWait.SpinUntil(() => w.Gets > 1000, VcpuThread.Generous));
        mmu.Pause();
        // flip one byte in every stored value, as a broken migration might
        var values = m.GetRangeBytes(w.ValuePagesStart(0), 2);
        for (int i = 20; i < 100 * 64; i += 64) values[i] ^= 0xFF;
        mmu.Resume();
        Assert.True(SpinWait.SpinUntil(() => w.CorruptReads > 0, VcpuThread.Generous));
        cts.Cancel();
        await run.WaitAsync(VcpuThread.Generous);
        Assert.Contains("GET key", w.FirstCorruption);
    }

    [Fact]
    public async Task Memory_spike_grows_the_footprint_by_n_pages_at_once()
    {
        using var m = new GuestMemory(Size);
        using var mmu = new SoftwareMmu(m);
        var w = new MemorySpikeWorkload(new MemorySpikeOptions { BasePages = 256, SpikePages = 512 });
        using var cts = new CancellationTokenSource();
        var run = w.RunAsync(mmu, cts.Token);
        Assert.True(SpinWait.SpinUntil(() => m.ResidentPages == 256 && w.TotalOperations > 1000, VcpuThread.Generous));
        w.TriggerSpike();
        var took = await w.Spiked.WaitAsync(VcpuThread.Generous);
        Assert.True(took > TimeSpan.Zero);
        Assert.Equal(768, m.ResidentPages);
        Assert.True(SpinWait.SpinUntil(() => w.Timeline.Count >= 2, VcpuThread.Generous));
        cts.Cancel();
        await run.WaitAsync(VcpuThread.Generous);
    }

    [Fact]
    public async Task Spike_fires_by_itself_after_its_delay()
    {
        using var m = new GuestMemory(Size);
        using var mmu = new SoftwareMmu(m);
        var w = new MemorySpikeWorkload(new MemorySpikeOptions { BasePages = 16, SpikePages = 16, SpikeAfter = TimeSpan.FromMilliseconds(50) });
        using var cts = new CancellationTokenSource();
        var run = w.RunAsync(mmu, cts.Token);
        await w.Spiked.WaitAsync(VcpuThread.Generous);
        cts.Cancel();
        await run.WaitAsync(VcpuThread.Generous);
        Assert.Equal(32, m.ResidentPages);
    }

    [Fact]
    public async Task A_vcpu_fault_error_fails_the_workload_and_stops_the_others()
    {
        using var m = new GuestMemory(Size);
        using var mmu = new SoftwareMmu(m); // no handler: a Remote page is an error
        m.TryTransition(m.PageCount - 1, PageResidency.Zero, PageResidency.Remote);
        var w = new MemoryBenchmarkWorkload(new MemoryBenchmarkOptions { Vcpus = 2 });
        var e = await Assert.ThrowsAsync<PageFaultException>(() => w.RunAsync(mmu, CancellationToken.None).WaitAsync(VcpuThread.Generous));
        Assert.Equal(m.PageCount - 1, e.Page.Value);
    }

    [Fact]
    public async Task Options_that_do_not_fit_are_rejected_by_name()
    {
        using var m = new GuestMemory(Size);
        using var mmu = new SoftwareMmu(m);
        async Task<string> Fails(Workload w) => (await Assert.ThrowsAsync<ArgumentException>(() => w.RunAsync(mmu, CancellationToken.None))).Message;
        Assert.Contains("needs", await Fails(new KeyValueStoreWorkload(new KeyValueStoreOptions { Keys = 1_000_000 })));
        Assert.Contains("ValueBytes", await Fails(new KeyValueStoreWorkload(new KeyValueStoreOptions { ValueBytes = 20 })));
        Assert.Contains("GetFraction", await Fails(new KeyValueStoreWorkload(new KeyValueStoreOptions { GetFraction = 2 })));
        Assert.Contains("WorkingSetFraction", await Fails(new HotSetWorkload(new HotSetOptions { WorkingSetFraction = 0 })));
        Assert.Contains("TargetDirtyPagesPerSecond", await Fails(new HotSetWorkload(new HotSetOptions { TargetDirtyPagesPerSecond = -1 })));
        Assert.Contains("StartPage", await Fails(new MemoryBenchmarkWorkload(new MemoryBenchmarkOptions { StartPage = 5000 })));
        Assert.Contains("needs", await Fails(new MemorySpikeWorkload(new MemorySpikeOptions { BasePages = 4000, SpikePages = 100 })));
        Assert.Contains("Vcpus", Assert.Throws<ArgumentException>(() => new IdleWorkload(new IdleWorkloadOptions { Vcpus = 0 })).Message);
        var once = new IdleWorkload();
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        await once.RunAsync(mmu, cts.Token);
        await Assert.ThrowsAsync<InvalidOperationException>(() => once.RunAsync(mmu, CancellationToken.None));
    }
}
