using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Tests.Support;
using Xunit;

namespace MigrationFabric.Memory.Tests.Mmu;

public class SoftwareMmuTests
{
    private const long Size = 16L << 20;

    [Fact]
    public void First_touch_of_a_zero_page_makes_it_resident_without_the_handler()
    {
        using var m = new GuestMemory(Size);
        var handler = new GatedFaultHandler();
        using var mmu = new SoftwareMmu(m, handler);
        using var cpu = mmu.CreateVcpu();
        Assert.Equal(0UL, cpu.ReadUInt64(8192));
        Assert.Equal(PageResidency.Resident, m.GetResidency(2));
        cpu.WriteUInt64(4096 * 3 + 16, 0xDEADBEEF);
        Assert.Equal(0xDEADBEEFUL, cpu.ReadUInt64(4096 * 3 + 16));
        Assert.Equal(2, mmu.FirstTouches);
        Assert.Equal(0, handler.Calls);
        Assert.Equal(2, m.ResidentPages);
        Assert.True(m.Dirty.IsSet(3));
        Assert.False(m.Dirty.IsSet(2), "a read must not dirty the page");
        Assert.True(m.Accessed.IsSet(2));
    }

    [Fact]
    public void Writes_spanning_pages_land_byte_exact_and_dirty_every_page()
    {
        using var m = new GuestMemory(Size);
        using var mmu = new SoftwareMmu(m);
        using var cpu = mmu.CreateVcpu();
        var data = new byte[3 * Page.Size + 100];
        Random.Shared.NextBytes(data);
        cpu.Write(Page.Size - 50, data);
        var back = new byte[data.Length];
        cpu.Read(Page.Size - 50, back);
        Assert.Equal(data, back);
        for (long p = 0; p <= 4; p++) Assert.True(m.Dirty.IsSet(p));
        Assert.False(m.Dirty.IsSet(5));
        cpu.Fill(10 * Page.Size, 2 * Page.Size, 0x5A);
        Assert.Equal(0x5A, m.GetPageBytes(11)[Page.Size - 1]);
    }

    [Fact]
    public void Bad_guest_accesses_are_rejected_without_touching_memory()
    {
        using var m = new GuestMemory(Size);
        using var mmu = new SoftwareMmu(m);
        using var cpu = mmu.CreateVcpu();
        Assert.Throws<ArgumentOutOfRangeException>(() => cpu.WriteUInt64(Size, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => cpu.WriteUInt64(-8, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => cpu.Write(Size - 10, new byte[11]));
        Assert.Throws<ArgumentOutOfRangeException>(() => cpu.Fill(Size - 4096, 4097, 1));
        Assert.Throws<ArgumentException>(() => cpu.ReadUInt64(12));
        Assert.Equal(0, m.ResidentPages);
        Assert.Equal(0, m.Dirty.CountSet());
    }

    [Fact]
    public void Ballooned_page_touched_by_the_guest_is_deflated_on_demand()
    {
        using var m = new GuestMemory(Size);
        using var mmu = new SoftwareMmu(m);
        using var cpu = mmu.CreateVcpu();
        m.TryTransition(9, PageResidency.Zero, PageResidency.Ballooned);
        cpu.WriteUInt64(9 * Page.Size, 42);
        Assert.Equal(PageResidency.Resident, m.GetResidency(9));
        Assert.Equal(1, mmu.DeflatesOnTouch);
    }

    [Theory]
    [InlineData(PageResidency.Swapped, false)]
    [InlineData(PageResidency.Remote, true)]
    public void Fault_on_a_non_resident_page_calls_the_handler_and_sees_its_bytes(PageResidency state, bool asyncHandler)
    {
        using var m = new GuestMemory(Size);
        var handler = new GatedFaultHandler(async: asyncHandler);
        using var mmu = new SoftwareMmu(m, handler);
        using var cpu = mmu.CreateVcpu();
        m.TryTransition(40, PageResidency.Zero, state);
        Assert.Equal(0x0101010101010101UL * GatedFaultHandler.ContentOf(40), cpu.ReadUInt64(40 * Page.Size + 64));
        Assert.Equal(PageResidency.Resident, m.GetResidency(40));
        Assert.Equal(1, handler.Calls);
        Assert.Equal(1, mmu.FaultsResolved);
        Assert.Equal(1, mmu.FaultLatency.Count);
        Assert.True(mmu.FaultLatency.PercentileNanoseconds(0.5) > 0);
        Assert.Equal(1, mmu.HandlerCallLatency.Count);
    }

    [Fact]
    public async Task Concurrent_faults_on_one_page_are_resolved_once_and_only_faulting_vcpus_block()
    {
        using var m = new GuestMemory(Size);
        using var gate = new ManualResetEventSlim();
        var handler = new GatedFaultHandler(gate);
        using var mmu = new SoftwareMmu(m, handler);
        m.TryTransition(7, PageResidency.Zero, PageResidency.Remote);

        const int faulters = 4;
        var started = new CountdownEvent(faulters);
        var results = new ulong[faulters];
        var tasks = new Task[faulters];
        for (int i = 0; i < faulters; i++)
        {
            int k = i;
            tasks[i] = VcpuThread.Start(() =>
            {
                using var cpu = mmu.CreateVcpu();
                started.Signal();
                results[k] = cpu.ReadUInt64(7 * Page.Size + 8 * k);
            });
        }
        Assert.True(started.Wait(VcpuThread.Generous));
        Assert.True(handler.Entered.Wait(VcpuThread.Generous));

        // a vCPU on other (resident or zero) pages runs on while the faulters are blocked
        using (var free = mmu.CreateVcpu())
        {
            for (long p = 100; p < 200; p++) free.WriteUInt64(p * Page.Size, (ulong)p);
            Assert.Equal(150UL, free.ReadUInt64(150 * Page.Size));
        }
        Assert.All(tasks, t => Assert.False(t.IsCompleted));

        // wait until every faulter has joined the resolution before releasing it
        SpinWait.SpinUntil(() => mmu.FaultsCoalesced == faulters - 1, VcpuThread.Generous);
        gate.Set();
        await Task.WhenAll(tasks).WaitAsync(VcpuThread.Generous);
        Assert.Equal(1, handler.Calls);
        Assert.Equal(faulters - 1, mmu.FaultsCoalesced);
        Assert.All(results, r => Assert.Equal(0x0101010101010101UL * GatedFaultHandler.ContentOf(7), r));
        Assert.Equal(faulters, mmu.FaultLatency.Count);
        // one handler call, timed once, however many vCPUs waited on it
        Assert.Equal(1, mmu.HandlerCallLatency.Count);
    }

    [Fact]
    public async Task Concurrent_faults_on_different_pages_each_call_the_handler()
    {
        using var m = new GuestMemory(Size);
        using var gate = new ManualResetEventSlim();
        var handler = new GatedFaultHandler(gate, async: true);
        using var mmu = new SoftwareMmu(m, handler);
        const int threads = 4;
        for (long p = 0; p < threads; p++) m.TryTransition(p * 10, PageResidency.Zero, PageResidency.Swapped);
        var tasks = Enumerable.Range(0, threads).Select(i => VcpuThread.Start(() =>
        {
            using var cpu = mmu.CreateVcpu();
            cpu.WriteUInt64(i * 10L * Page.Size, (ulong)i + 1000);
        })).ToArray();
        Assert.True(SpinWait.SpinUntil(() => handler.EnteredCount == threads, VcpuThread.Generous), "every page faults separately");
        gate.Set();
        await Task.WhenAll(tasks).WaitAsync(VcpuThread.Generous);
        Assert.Equal(threads, handler.Calls);
        for (int i = 0; i < threads; i++)
        {
            var page = m.GetPageBytes(i * 10L);
            Assert.Equal((ulong)i + 1000, BitConverter.ToUInt64(page));
            Assert.Equal(GatedFaultHandler.ContentOf(i * 10L), page[8]);
            Assert.True(m.Dirty.IsSet(i * 10L));
        }
    }

    [Fact]
    public async Task Handler_failure_reaches_every_waiting_vcpu_and_the_page_stays_non_resident()
    {
        using var m = new GuestMemory(Size);
        using var gate = new ManualResetEventSlim();
        var handler = new GatedFaultHandler(gate) { Throw = new IOException("disk on fire") };
        using var mmu = new SoftwareMmu(m, handler);
        m.TryTransition(3, PageResidency.Zero, PageResidency.Swapped);
        var tasks = Enumerable.Range(0, 3).Select(_ => VcpuThread.Start(() =>
        {
            using var cpu = mmu.CreateVcpu();
            cpu.ReadUInt64(3 * Page.Size);
        })).ToArray();
        Assert.True(handler.Entered.Wait(VcpuThread.Generous));
        SpinWait.SpinUntil(() => mmu.FaultsCoalesced == 2, TimeSpan.FromSeconds(5));
        gate.Set();
        foreach (var t in tasks)
        {
            var pfe = await Assert.ThrowsAsync<PageFaultException>(() => t.WaitAsync(VcpuThread.Generous));
            Assert.Equal(3, pfe.Page.Value);
        }
        Assert.Equal(PageResidency.Swapped, m.GetResidency(3));
    }

    [Fact]
    public void Fault_without_a_handler_is_a_clear_error()
    {
        using var m = new GuestMemory(Size);
        using var mmu = new SoftwareMmu(m);
        using var cpu = mmu.CreateVcpu();
        m.TryTransition(3, PageResidency.Zero, PageResidency.Remote);
        var e = Assert.Throws<PageFaultException>(() => cpu.ReadUInt64(3 * Page.Size));
        Assert.Contains("no fault handler", e.Message);
    }

    [Fact]
    public void Handler_that_never_installs_the_page_is_a_clear_error()
    {
        using var m = new GuestMemory(Size);
        using var mmu = new SoftwareMmu(m, new DoNothingHandler(), new SoftwareMmuOptions { MaxFaultRetries = 3 });
        using var cpu = mmu.CreateVcpu();
        m.TryTransition(3, PageResidency.Zero, PageResidency.Remote);
        var e = Assert.Throws<PageFaultException>(() => cpu.ReadUInt64(3 * Page.Size));
        Assert.Contains("MaxFaultRetries", e.Message);
    }

    [Fact]
    public async Task Cancelled_vcpu_stops_waiting_for_a_slow_fault()
    {
        using var m = new GuestMemory(Size);
        using var gate = new ManualResetEventSlim();
        var handler = new GatedFaultHandler(gate, async: true);
        using var mmu = new SoftwareMmu(m, handler);
        m.TryTransition(3, PageResidency.Zero, PageResidency.Remote);
        using var cts = new CancellationTokenSource();
        var t = VcpuThread.Start(() =>
        {
            using var cpu = mmu.CreateVcpu(cts.Token);
            cpu.ReadUInt64(3 * Page.Size);
        });
        Assert.True(handler.Entered.Wait(VcpuThread.Generous));
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => t.WaitAsync(VcpuThread.Generous));
        // the resolution still completes for whoever touches the page next
        gate.Set();
        using var cpu2 = mmu.CreateVcpu();
        Assert.Equal(0x0101010101010101UL * GatedFaultHandler.ContentOf(3), cpu2.ReadUInt64(3 * Page.Size));
    }

    [Fact]
    public async Task Eviction_waits_for_the_vcpu_and_a_later_touch_faults_the_page_back()
    {
        using var m = new GuestMemory(Size);
        var handler = new GatedFaultHandler();
        using var mmu = new SoftwareMmu(m, handler);
        using var cpu = mmu.CreateVcpu();
        cpu.WriteUInt64(5 * Page.Size, 77);
        Assert.Equal(1, m.BeginEviction(5, 1));
        // a vCPU touching an Evicting page waits until the eviction is decided
        var toucher = VcpuThread.Start(() =>
        {
            using var c = mmu.CreateVcpu();
            Assert.Equal(0x0101010101010101UL * GatedFaultHandler.ContentOf(5), c.ReadUInt64(5 * Page.Size));
        });
        await Task.Delay(50); // observation window only
        Assert.False(toucher.IsCompleted);
        m.CompleteEviction(5, 1, PageResidency.Swapped);
        await toucher.WaitAsync(VcpuThread.Generous);
        Assert.Equal(1, handler.Calls);
    }

    [Fact]
    public async Task Writers_racing_evictions_never_lose_a_write_to_a_page_that_stays_resident()
    {
        // Evict-and-cancel loops against a writer: a cancelled eviction must keep every byte the writer stored.
        using var m = new GuestMemory(Size);
        using var mmu = new SoftwareMmu(m, new GatedFaultHandler());
        using var stop = new CancellationTokenSource();
        const int pages = 8;
        var writer = VcpuThread.Start(() =>
        {
            using var cpu = mmu.CreateVcpu();
            ulong v = 0;
            while (!stop.IsCancellationRequested)
            {
                v++;
                for (long p = 0; p < pages; p++) cpu.WriteUInt64(p * Page.Size, v);
                for (long p = 0; p < pages; p++) Assert.Equal(v, cpu.ReadUInt64(p * Page.Size));
            }
        });
        for (int i = 0; i < 2000 && !writer.IsCompleted; i++)
        {
            m.BeginEviction(0, pages);
            m.CancelEviction(0, pages);
        }
        stop.Cancel();
        await writer.WaitAsync(VcpuThread.Generous);
    }

    [Fact]
    public async Task Pause_holds_every_vcpu_out_of_memory_until_resume()
    {
        using var m = new GuestMemory(Size);
        using var mmu = new SoftwareMmu(m);
        using var stop = new CancellationTokenSource();
        long writes = 0;
        var tasks = Enumerable.Range(0, 2).Select(i => VcpuThread.Start(() =>
        {
            using var cpu = mmu.CreateVcpu(stop.Token);
            long p = i * 100;
            while (!stop.IsCancellationRequested)
            {
                cpu.WriteUInt64((p++ % 1000) * Page.Size, 1);
                Interlocked.Increment(ref writes);
            }
        })).ToArray();
        Assert.True(SpinWait.SpinUntil(() => Interlocked.Read(ref writes) > 1000, VcpuThread.Generous));
        mmu.Pause();
        Assert.True(mmu.IsPaused);
        // with vCPUs held, memory is stable: a harvest now sees nothing new afterwards
        m.Dirty.ClearAll();
        long before = Interlocked.Read(ref writes);
        await Task.Delay(50); // observation window only: no assertion depends on its length
        Assert.InRange(Interlocked.Read(ref writes) - before, 0, 2);
        Assert.Equal(0, m.Dirty.CountSet());
        mmu.Resume();
        Assert.True(SpinWait.SpinUntil(() => Interlocked.Read(ref writes) > before + 1000, VcpuThread.Generous));
        stop.Cancel();
        try { await Task.WhenAll(tasks).WaitAsync(VcpuThread.Generous); }
        catch (OperationCanceledException) { } // a vCPU may be stopped inside a throttle or pause wait
    }

    [Fact]
    public async Task Cancelled_vcpu_leaves_a_pause()
    {
        using var m = new GuestMemory(Size);
        using var mmu = new SoftwareMmu(m);
        using var stop = new CancellationTokenSource();
        using var running = new ManualResetEventSlim();
        var t = VcpuThread.Start(() =>
        {
            using var cpu = mmu.CreateVcpu(stop.Token);
            while (true) { cpu.WriteUInt64(0, 1); running.Set(); }
        });
        Assert.True(running.Wait(VcpuThread.Generous));
        mmu.Pause();
        stop.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => t.WaitAsync(VcpuThread.Generous));
    }

    [Fact]
    public async Task Dispose_does_not_release_a_paused_vcpu_into_memory_about_to_be_unmapped()
    {
        // As at a VM's release after switch-over: its vCPUs are paused, a vCPU thread the VM does not own (its own
        // token) outlives it, and the memory is unmapped right after the MMU goes. Before, Dispose let that vCPU run on.
        var m = new GuestMemory(Size);
        var mmu = new SoftwareMmu(m);
        using var stop = new CancellationTokenSource();
        using var running = new ManualResetEventSlim();
        long reads = 0;
        var t = VcpuThread.Start(() =>
        {
            using var cpu = mmu.CreateVcpu(stop.Token);
            for (long p = 0; ; p = (p + 1) % (Size / Page.Size))
            {
                cpu.ReadUInt64(p * Page.Size);
                Interlocked.Increment(ref reads);
                running.Set();
            }
        });
        Assert.True(running.Wait(VcpuThread.Generous));
        mmu.Pause();
        long paused = Interlocked.Read(ref reads);
        mmu.Dispose();
        var e = await Assert.ThrowsAsync<ObjectDisposedException>(() => t.WaitAsync(VcpuThread.Generous));
        Assert.Contains(nameof(SoftwareMmu), e.ObjectName);
        Assert.InRange(Interlocked.Read(ref reads) - paused, 0, 1);
        m.Dispose();
    }

    [Fact]
    public async Task Dispose_waits_for_a_running_vcpu_to_leave_memory_and_every_later_access_is_refused()
    {
        var m = new GuestMemory(Size);
        var mmu = new SoftwareMmu(m);
        using var running = new ManualResetEventSlim();
        var t = VcpuThread.Start(() =>
        {
            using var cpu = mmu.CreateVcpu();
            var page = new byte[Page.Size];
            for (long p = 0; ; p = (p + 1) % (Size / Page.Size))
            {
                cpu.Write(p * Page.Size, page);
                running.Set();
            }
        });
        Assert.True(running.Wait(VcpuThread.Generous));
        mmu.Dispose();
        // Dispose returned: the vCPU is outside and takes the slow path on its next access, so unmapping now is safe.
        m.Dispose();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => t.WaitAsync(VcpuThread.Generous));
        mmu.Dispose();
        Assert.Throws<ObjectDisposedException>(() => mmu.CreateVcpu());
    }

    [Fact]
    public void Throttle_validates_its_range_and_throttled_vcpus_still_progress()
    {
        using var m = new GuestMemory(Size);
        using var mmu = new SoftwareMmu(m, options: new SoftwareMmuOptions { ThrottleSlice = TimeSpan.FromMilliseconds(2) });
        Assert.Throws<ArgumentOutOfRangeException>(() => mmu.SetThrottle(1.0));
        Assert.Throws<ArgumentOutOfRangeException>(() => mmu.SetThrottle(-0.1));
        mmu.SetThrottle(0.5);
        Assert.Equal(0.5, mmu.Throttle);
        using var cpu = mmu.CreateVcpu();
        for (int i = 0; mmu.ThrottleSleeps < 3; i++)
        {
            Assert.True(i < 100_000_000, "a throttled vCPU never slept");
            cpu.WriteUInt64(8L * (i % 512), (ulong)i);
        }
        mmu.SetThrottle(0);
        long sleeps = mmu.ThrottleSleeps;
        for (int i = 0; i < 100_000; i++) cpu.WriteUInt64(8L * (i % 512), (ulong)i);
        Assert.Equal(sleeps, mmu.ThrottleSleeps);
        Assert.Equal(0, mmu.Throttle);
    }

    [Fact]
    public void Options_are_validated_with_the_option_named()
    {
        using var m = new GuestMemory(Size);
        var e = Assert.Throws<ArgumentException>(() => new SoftwareMmu(m, options: new SoftwareMmuOptions { MaxFaultRetries = 0 }));
        Assert.Contains("MaxFaultRetries", e.Message);
        e = Assert.Throws<ArgumentException>(() => new SoftwareMmu(m, options: new SoftwareMmuOptions { ThrottleSlice = TimeSpan.Zero }));
        Assert.Contains("ThrottleSlice", e.Message);
    }

    private sealed class DoNothingHandler : IPageFaultHandler
    {
        public ValueTask ResolveAsync(PageFault fault, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }
}
