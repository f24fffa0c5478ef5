using System.Buffers.Binary;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Integrity;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Tests.Support;
using MigrationFabric.Memory.Workloads;
using Xunit;

namespace MigrationFabric.Memory.Tests.Workloads;

/// <summary>vCPU state captured at a paused source and restored into a new workload: the guest program continues, on real vCPU threads.</summary>
public class WorkloadStateTests
{
    private const long Size = 16L << 20;

    /// <summary>One emulated host: memory, MMU and a running workload.</summary>
    private sealed class Vm : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();

        public Vm(Workload workload)
        {
            Memory = new GuestMemory(Size);
            Mmu = new SoftwareMmu(Memory);
            Workload = workload;
        }

        public GuestMemory Memory { get; }
        public SoftwareMmu Mmu { get; }
        public Workload Workload { get; }
        public Task Run { get; private set; } = Task.CompletedTask;

        public Vm Start()
        {
            Run = Workload.RunAsync(Mmu, _stop.Token);
            return this;
        }

        public void WaitFor(Func<bool> condition, string what)
        {
            Assert.True(SpinWait.SpinUntil(() => condition() || Run.IsFaulted, VcpuThread.Generous), $"timed out waiting for {what}");
            if (Run.IsFaulted) throw Run.Exception!;
        }

        /// <summary>What a switch-over does: pause, capture, hand the pages over; the source then stays paused.</summary>
        public byte[] SwitchOverTo(GuestMemory destination)
        {
            Mmu.Pause();
            var state = Workload.CaptureState();
            for (long p = 0; p < Memory.PageCount; p++)
                if (Memory.GetResidency(p) == PageResidency.Resident)
                    Assert.True(destination.TryInstall(p, PageResidency.Zero, Memory.GetPageBytes(p)));
            return state;
        }

        public async Task StopAsync()
        {
            _stop.Cancel();
            await Run.WaitAsync(VcpuThread.Generous);
        }

        public async ValueTask DisposeAsync()
        {
            if (!Run.IsCompleted) await StopAsync();
            Mmu.Dispose();
            Memory.Dispose();
            _stop.Dispose();
        }
    }

    private static KeyValueStoreWorkload Kv() => new(new KeyValueStoreOptions { Keys = 1000, ValueBytes = 128, Vcpus = 2, GetFraction = 0.5 });

    [Fact]
    public async Task Key_value_store_continues_from_its_versions_across_a_chain_of_moves()
    {
        var source = Kv();
        var vm = new Vm(source).Start();
        // Both vCPUs past their preload: one starved of a core can still be preloading after the other did 5000 SETs.
        vm.WaitFor(() => source.Preloaded == 2 * 1000 && source.Sets > 5000, "SETs after the preload");
        long setsBefore = 0;
        // Four hops: each pause lands wherever the vCPUs are, often inside an operation that the next host redoes.
        for (int hop = 0; hop < 4; hop++)
        {
            var current = (KeyValueStoreWorkload)vm.Workload;
            var next = Kv();
            var nextVm = new Vm(next);
            var state = vm.SwitchOverTo(nextVm.Memory);
            await vm.StopAsync();
            Assert.Equal(0, current.CorruptReads);
            next.RestoreState(state);
            Assert.True(next.IsRestored);
            Assert.Equal(2 * 1000, next.Preloaded);
            for (int v = 0; v < 2; v++)
            {
                // The source's vCPU may have committed one more operation after the capture (its memory was already written): the destination redoes it.
                ulong[] at = current.VersionsOf(v), restored = next.VersionsOf(v);
                int behind = 0;
                for (int k = 0; k < at.Length; k++)
                {
                    if (restored[k] == at[k]) continue;
                    Assert.Equal(at[k] - 1, restored[k]);
                    behind++;
                }
                Assert.InRange(behind, 0, 1);
            }
            Assert.InRange(next.Sets, setsBefore, current.Sets);
            Assert.InRange(next.TotalOperations, 1, current.TotalOperations);
            long restoredSets = next.Sets, restoredGets = next.Gets;
            setsBefore = restoredSets;
            await vm.DisposeAsync();
            vm = nextVm.Start();
            vm.WaitFor(() => next.Gets > restoredGets + 2000 && next.Sets > restoredSets + 2000, $"hop {hop}: GETs and SETs at the destination");
            Assert.Equal(0, next.CorruptReads);
            Assert.Null(next.FirstCorruption);
            Assert.Equal(0, next.Misses);
        }
        await vm.DisposeAsync();
    }

    [Fact]
    public async Task A_set_cut_short_by_the_pause_is_redone_at_the_destination_and_keeps_its_value_slot()
    {
        var options = new KeyValueStoreOptions { Keys = 100, ValueBytes = 64, Preload = false, GetFraction = 0.5 };
        var source = new KeyValueStoreWorkload(options);
        await using var vm = new Vm(source);
        // The value pages are held in eviction: the first SET of a new key claims its bucket (table page), then waits on its value.
        long values = 1, valuePages = 2;
        for (long p = values; p < values + valuePages; p++) Assert.True(vm.Memory.TryInstall(p, PageResidency.Zero, new byte[Page.Size]));
        Assert.Equal((int)valuePages, vm.Memory.BeginEviction(values, (int)valuePages));
        vm.Start();
        Assert.Equal(values, source.ValuePagesStart(0));
        vm.WaitFor(() => vm.Memory.Dirty.IsSet(0), "a bucket claimed in the table page");
        var next = new KeyValueStoreWorkload(options);
        await using var dest = new Vm(next);
        vm.Mmu.Pause();
        var state = source.CaptureState();
        for (long p = 0; p < vm.Memory.PageCount; p++)
            if (vm.Memory.GetResidency(p) is PageResidency.Resident or PageResidency.Evicting)
                Assert.True(dest.Memory.TryInstall(p, PageResidency.Zero, vm.Memory.GetPageBytes(p)));
        await vm.StopAsync();
        // Nothing of the cut SET was committed: its key has no version and the next free slot is still 0 ...
        Assert.Equal(0, source.Sets);
        next.RestoreState(state);
        Assert.All(next.VersionsOf(0), v => Assert.Equal(0UL, v));
        // ... so the destination redoes it: it finds the bucket it claimed (slot 0) and must not give slot 0 to the next new key.
        dest.Start();
        dest.WaitFor(() => next.Sets > 2000 && next.Gets > 2000, "SETs and GETs after the redo");
        await dest.StopAsync();
        Assert.Null(next.FirstCorruption);
        Assert.Equal(0, next.CorruptReads);
    }

    [Fact]
    public async Task A_restored_key_value_store_does_not_preload_again()
    {
        var source = new KeyValueStoreWorkload(new KeyValueStoreOptions { Keys = 500, ValueBytes = 64, GetFraction = 1.0 });
        await using var vm = new Vm(source).Start();
        vm.WaitFor(() => source.Gets > 1000, "GETs");
        var next = new KeyValueStoreWorkload(new KeyValueStoreOptions { Keys = 500, ValueBytes = 64, GetFraction = 1.0 });
        await using var dest = new Vm(next);
        next.RestoreState(vm.SwitchOverTo(dest.Memory));
        dest.Memory.Dirty.ClearAll();
        dest.Start();
        dest.WaitFor(() => next.Gets > source.Gets + 1000, "GETs at the destination");
        await dest.StopAsync();
        // GETs only: a preload would have SET (written) every key again.
        Assert.Equal(0, dest.Memory.Dirty.CountSet());
        Assert.Equal(0, next.CorruptReads);
        Assert.Equal(0, next.Misses);
        Assert.Equal(1UL, source.VersionsOf(0)[0]);
        Assert.Equal(source.VersionsOf(0), next.VersionsOf(0));
    }

    [Fact]
    public async Task Memory_benchmark_continues_its_sweep_and_counters()
    {
        var options = new MemoryBenchmarkOptions { Vcpus = 2, Pages = 1024 };
        var source = new MemoryBenchmarkWorkload(options);
        await using var vm = new Vm(source).Start();
        vm.WaitFor(() => source.Sweeps >= 4, "four sweeps");
        var next = new MemoryBenchmarkWorkload(options);
        await using var dest = new Vm(next);
        var state = vm.SwitchOverTo(dest.Memory);
        await vm.StopAsync();
        next.RestoreState(state);
        Assert.InRange(next.Sweeps, source.Sweeps - 2, source.Sweeps);
        Assert.InRange(next.TotalOperations, source.TotalOperations - 2 * 64 * Page.Size, source.TotalOperations);
        long restored = next.Sweeps, restoredOps = next.TotalOperations;
        dest.Start();
        dest.WaitFor(() => next.Sweeps >= restored + 4 && next.Timeline.Count >= 2, "four more sweeps");
        await dest.StopAsync();
        Assert.True(next.TotalOperations >= restoredOps + 4 * 1024 * Page.Size);
        // Samples count what ran here: the carried counter is not one huge first interval.
        var first = next.Timeline.Snapshot()[0];
        Assert.True(first.PerSecond * first.Elapsed.TotalSeconds <= next.TotalOperations - restoredOps + 1,
            $"first sample {first.PerSecond:F0}/s over {first.Elapsed} counts operations from before the restore");
    }

    [Fact]
    public async Task Hot_set_continues_its_stamps_and_random_stream()
    {
        var options = new HotSetOptions { WorkingSetFraction = 0.05, TargetDirtyPagesPerSecond = 0 };
        var source = new HotSetWorkload(options);
        await using var vm = new Vm(source).Start();
        vm.WaitFor(() => source.TotalOperations > 50_000, "writes");
        var next = new HotSetWorkload(options);
        await using var dest = new Vm(next);
        var state = vm.SwitchOverTo(dest.Memory);
        await vm.StopAsync();
        next.RestoreState(state);
        long pages = (long)(dest.Memory.PageCount * 0.05);
        ulong maxBefore = MaxWord(dest.Memory, pages);
        var before = dest.Memory.GetRangeBytes(0, (int)pages).ToArray();
        dest.Start();
        dest.WaitFor(() => next.TotalOperations > source.TotalOperations + 10_000, "writes at the destination");
        await dest.StopAsync();
        // A restarted program would write stamps from 1 again; a continued one only writes stamps past the source's.
        var after = dest.Memory.GetRangeBytes(0, (int)pages);
        int changed = 0;
        for (int i = 0; i < before.Length; i += 8)
        {
            ulong now = BinaryPrimitives.ReadUInt64LittleEndian(after[i..]);
            if (now == BinaryPrimitives.ReadUInt64LittleEndian(before.AsSpan(i))) continue;
            changed++;
            Assert.True(now >= maxBefore, $"word {i} got stamp {now}, below the source's last stamp {maxBefore}");
        }
        Assert.True(changed > 0);
    }

    private static ulong MaxWord(GuestMemory memory, long pages)
    {
        ulong max = 0;
        var bytes = memory.GetRangeBytes(0, (int)pages);
        for (int i = 0; i < bytes.Length; i += 8) max = Math.Max(max, BinaryPrimitives.ReadUInt64LittleEndian(bytes[i..]));
        return max;
    }

    [Fact]
    public async Task Spike_carries_its_footprint_and_a_pending_trigger()
    {
        var options = new MemorySpikeOptions { BasePages = 64, SpikePages = 128 };
        var spiked = new MemorySpikeWorkload(options);
        await using var vm = new Vm(spiked).Start();
        spiked.TriggerSpike();
        await spiked.Spiked.WaitAsync(VcpuThread.Generous);
        var next = new MemorySpikeWorkload(options);
        await using var dest = new Vm(next);
        next.RestoreState(vm.SwitchOverTo(dest.Memory));
        dest.Memory.Dirty.ClearAll();
        dest.Start();
        // No trigger here: the destination keeps writing the whole grown footprint because its registers say it spiked.
        dest.WaitFor(() => dest.Memory.Dirty.CountSet() == 64 + 128, "the spiked footprint written at the destination");

        // A trigger that arrived while the source was paused is a pending input: the destination acts on it.
        var calm = new MemorySpikeWorkload(options);
        await using var vm2 = new Vm(calm).Start();
        vm2.WaitFor(() => calm.TotalOperations > 1000, "base passes");
        var next2 = new MemorySpikeWorkload(options);
        await using var dest2 = new Vm(next2);
        vm2.Mmu.Pause();
        calm.TriggerSpike();
        next2.RestoreState(vm2.SwitchOverTo(dest2.Memory));
        await vm2.StopAsync();
        Assert.False(calm.Spiked.IsCompleted);
        dest2.Start();
        await next2.Spiked.WaitAsync(VcpuThread.Generous);
        Assert.Equal(64 + 128, dest2.Memory.ResidentPages);
    }

    [Fact]
    public async Task Idle_state_names_its_kind_and_vcpus_and_restores()
    {
        var idle = new IdleWorkload(new IdleWorkloadOptions { Vcpus = 3 });
        await using var vm = new Vm(idle).Start();
        vm.Mmu.Pause();
        var state = idle.CaptureState();
        var next = new IdleWorkload(new IdleWorkloadOptions { Vcpus = 3 });
        next.RestoreState(state);
        await using var dest = new Vm(next).Start();
        Assert.True(SpinWait.SpinUntil(() => next.Timeline.Count >= 1, VcpuThread.Generous));
        Assert.Equal(0, dest.Memory.Dirty.CountSet());
    }

    [Fact]
    public async Task Capture_needs_a_started_workload_and_a_paused_mmu()
    {
        var kv = Kv();
        var notStarted = Assert.Throws<InvalidOperationException>(() => kv.CaptureState());
        Assert.Contains("has not started", notStarted.Message);
        await using var vm = new Vm(kv).Start();
        vm.WaitFor(() => kv.Gets > 100, "GETs");
        var running = Assert.Throws<InvalidOperationException>(() => kv.CaptureState());
        Assert.Contains("paused", running.Message);
        vm.Mmu.Pause();
        var state = kv.CaptureState();
        vm.Mmu.Resume();
        // A capture does not disturb the program: it keeps running and checking.
        long gets = kv.Gets;
        vm.WaitFor(() => kv.Gets > gets + 1000, "GETs after the capture");
        Assert.Equal(0, kv.CorruptReads);
        Assert.Throws<InvalidOperationException>(() => kv.RestoreState(state));
        var twice = Kv();
        twice.RestoreState(state);
        Assert.Contains("only once", Assert.Throws<InvalidOperationException>(() => twice.RestoreState(state)).Message);
    }

    [Fact]
    public async Task Garbled_or_mismatched_state_is_rejected_naming_what_is_wrong()
    {
        var kv = Kv();
        await using var vm = new Vm(kv).Start();
        vm.WaitFor(() => kv.Sets > 100, "SETs");
        vm.Mmu.Pause();
        var state = kv.CaptureState();
        vm.Mmu.Resume();

        string Rejects(Workload w, byte[] blob) => Assert.Throws<InvalidDataException>(() => w.RestoreState(blob)).Message;
        var flipped = (byte[])state.Clone();
        flipped[state.Length / 2] ^= 0x40;
        Assert.Contains("checksum mismatch", Rejects(Kv(), flipped));
        Assert.Contains("checksum mismatch", Rejects(Kv(), state[..^1]));
        Assert.Contains("shorter than", Rejects(Kv(), state[..10]));
        Assert.Contains("magic", Rejects(Kv(), [.. "JUNK"u8, .. state[4..]]));
        Assert.Contains("format version 2", Rejects(Kv(), Resealed(state, s => BinaryPrimitives.WriteUInt16LittleEndian(s[4..], 2))));
        Assert.Contains("'kv', this workload is 'hotset'", Rejects(new HotSetWorkload(new HotSetOptions { Vcpus = 2 }), state));
        Assert.Contains("has 2 vCPUs, this workload has 1", Rejects(new KeyValueStoreWorkload(new KeyValueStoreOptions { Keys = 1000, ValueBytes = 128 }), state));
        Assert.Contains("holds 1000 keys, this store has 999", Rejects(new KeyValueStoreWorkload(new KeyValueStoreOptions { Keys = 999, ValueBytes = 128, Vcpus = 2 }), state));
        Assert.Contains("bytes of registers; its vCPUs have none", Rejects(new IdleWorkload(new IdleWorkloadOptions { Vcpus = 2 }), Renamed(state, "idle")));
        // A rejected blob leaves the workload fresh: it still starts and preloads.
        var fresh = Kv();
        Assert.Throws<InvalidDataException>(() => fresh.RestoreState(flipped));
        Assert.False(fresh.IsRestored);
        await using var freshVm = new Vm(fresh).Start();
        freshVm.WaitFor(() => fresh.Preloaded == 2000 && fresh.Gets > 0, "a fresh preload");
        Assert.Equal(0, fresh.CorruptReads);
    }

    /// <summary>The blob changed by <paramref name="edit"/> with a valid checksum again (what a buggy writer, not a flipped bit, would send).</summary>
    private static byte[] Resealed(byte[] state, SpanAction edit)
    {
        var copy = (byte[])state.Clone();
        edit(copy);
        BinaryPrimitives.WriteUInt64LittleEndian(copy.AsSpan(copy.Length - 8), Xxh64.Hash(copy.AsSpan(0, copy.Length - 8)));
        return copy;
    }

    private delegate void SpanAction(Span<byte> blob);

    private static byte[] Renamed(byte[] state, string kind)
    {
        int oldLength = state[6];
        var copy = new List<byte>(state[..6]) { (byte)kind.Length };
        copy.AddRange(System.Text.Encoding.ASCII.GetBytes(kind));
        copy.AddRange(state[(7 + oldLength)..]);
        return Resealed([.. copy], _ => { });
    }
}
