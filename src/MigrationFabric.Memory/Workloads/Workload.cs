using System.Runtime.InteropServices;
using MigrationFabric.Memory.Mmu;

namespace MigrationFabric.Memory.Workloads;

/// <summary>A guest program: vCPU threads running inside guest memory through the MMU, reporting throughput every sample interval.</summary>
public abstract class Workload
{
    private PaddedCounter[] _counters = [];
    private VcpuState?[] _registers = [];
    private SoftwareMmu? _mmu;
    private bool _restored;
    private int _started;

    /// <summary>A vCPU's operation counter and the sequence number of its commits (odd while one is being written), alone on their cache line.</summary>
    [StructLayout(LayoutKind.Explicit, Size = 128)]
    private struct PaddedCounter
    {
        [FieldOffset(64)] public long Value;
        [FieldOffset(72)] public long Sequence;
    }

    /// <summary>Creates a workload measured in <paramref name="unit"/>.</summary>
    protected Workload(string name, string unit, int vcpus, TimeSpan sampleInterval, TimeProvider? time)
    {
        if (vcpus < 1) throw new ArgumentException($"{name}: Vcpus must be at least 1, was {vcpus}.", nameof(vcpus));
        if (sampleInterval <= TimeSpan.Zero) throw new ArgumentException($"{name}: SampleInterval must be positive, was {sampleInterval}.", nameof(sampleInterval));
        Name = name;
        Vcpus = vcpus;
        SampleInterval = sampleInterval;
        Time = time ?? TimeProvider.System;
        Timeline = new ThroughputTimeline(unit);
    }

    /// <summary>Short name, e.g. "kv".</summary>
    public string Name { get; }

    /// <summary>vCPU threads the workload runs.</summary>
    public int Vcpus { get; }

    /// <summary>How often a throughput sample is taken.</summary>
    public TimeSpan SampleInterval { get; }

    /// <summary>Throughput samples, one per interval while running.</summary>
    public ThroughputTimeline Timeline { get; }

    /// <summary>Operations counted since start (bytes, pages or ops: the timeline's unit without "/s").</summary>
    public long TotalOperations
    {
        get
        {
            long n = 0;
            var c = _counters;
            for (int i = 0; i < c.Length; i++) n += Volatile.Read(ref c[i].Value);
            return n;
        }
    }

    /// <summary>The time source of samples and pacing.</summary>
    protected TimeProvider Time { get; }

    /// <summary>Runs the workload on <paramref name="mmu"/> until <paramref name="cancellationToken"/> fires (then completes normally) or a vCPU fails (then faults).</summary>
    public async Task RunAsync(SoftwareMmu mmu, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(mmu);
        if (Interlocked.Exchange(ref _started, 1) != 0) throw new InvalidOperationException($"workload {Name} can run only once.");
        Prepare(mmu);
        if (!_restored)
        {
            _counters = new PaddedCounter[Vcpus];
            var registers = new VcpuState?[Vcpus];
            for (int i = 0; i < Vcpus; i++) registers[i] = CreateVcpuState(i);
            Volatile.Write(ref _registers, registers);
        }
        Volatile.Write(ref _mmu, mmu);
        using var failed = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var stop = failed.Token;
        long start = Time.GetTimestamp();
        // A restored workload's counters continue from the source's; the first sample counts only what ran here.
        long lastTs = start, lastOps = TotalOperations;
        var samplerLock = new Lock();
        void TakeSample()
        {
            lock (samplerLock)
            {
                long now = Time.GetTimestamp();
                long ops = TotalOperations;
                double secs = Time.GetElapsedTime(lastTs, now).TotalSeconds;
                if (secs <= 0) return;
                Timeline.Add(new ThroughputSample(Time.GetElapsedTime(start, now), (ops - lastOps) / secs));
                lastTs = now;
                lastOps = ops;
            }
        }
        using var timer = Time.CreateTimer(_ => TakeSample(), null, SampleInterval, SampleInterval);
        var threads = new Task[Vcpus];
        for (int i = 0; i < Vcpus; i++)
        {
            int index = i;
            var tcs = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var thread = new Thread(() =>
            {
                try
                {
                    using var cpu = mmu.CreateVcpu(stop);
                    RunVcpu(cpu, index, stop);
                    tcs.SetResult();
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested) { tcs.SetResult(); }
                catch (Exception e)
                {
                    tcs.SetException(e);
                    failed.Cancel();
                }
            })
            { IsBackground = true, Name = $"vcpu-{Name}-{index}" };
            thread.Start();
            threads[i] = tcs.Task;
        }
        try
        {
            await Task.WhenAll(threads).ConfigureAwait(false);
        }
        finally
        {
            timer.Dispose();
            TakeSample();
        }
    }

    /// <summary>
    /// Captures every vCPU's committed registers and operation counter as a <see cref="WorkloadStateFormat"/> blob (the switch-over's device state).
    /// Only while the MMU the workload runs on is paused: a vCPU then commits at most the operation whose memory accesses
    /// all finished before the pause, and a commit that races the copy is detected by its sequence number and copied again.
    /// </summary>
    /// <exception cref="InvalidOperationException">The workload has not started, or its MMU is not paused.</exception>
    public byte[] CaptureState()
    {
        var mmu = Volatile.Read(ref _mmu)
            ?? throw new InvalidOperationException($"workload {Name} has not started: it has no vCPU state to capture.");
        if (!mmu.IsPaused)
            throw new InvalidOperationException($"workload {Name}: vCPU state can be captured only while its MMU is paused (SoftwareMmu.Pause); its vCPUs are running.");
        var records = new WorkloadStateFormat.VcpuRecord[Vcpus];
        var sequences = new long[Vcpus];
        var done = new bool[Vcpus];
        int remaining = Vcpus;
        var spin = new SpinWait();
        while (remaining > 0)
        {
            for (int i = 0; i < Vcpus; i++)
            {
                if (done[i]) continue;
                ref var c = ref _counters[i];
                sequences[i] = Volatile.Read(ref c.Sequence);
                if ((sequences[i] & 1) != 0) continue;
                records[i] = new WorkloadStateFormat.VcpuRecord(Volatile.Read(ref c.Value), SaveRegisters(_registers[i]));
            }
            // The vCPUs' commits use plain stores: this barrier makes every store a vCPU issued before its sequence
            // number (as we read it again below) visible, so an unchanged even number means the copy was not torn.
            Interlocked.MemoryBarrierProcessWide();
            for (int i = 0; i < Vcpus; i++)
            {
                if (done[i] || (sequences[i] & 1) != 0) continue;
                if (Volatile.Read(ref _counters[i].Sequence) == sequences[i])
                {
                    done[i] = true;
                    remaining--;
                }
            }
            if (remaining > 0) spin.SpinOnce();
        }
        return WorkloadStateFormat.Write(Name, records);
    }

    /// <summary>Makes this (not yet started) workload continue from <paramref name="state"/>, a <see cref="CaptureState"/> blob of the same workload kind and vCPU count.</summary>
    /// <exception cref="InvalidDataException">The blob is garbled, of another format version, kind or vCPU count, or its registers do not fit these options.</exception>
    /// <exception cref="InvalidOperationException">The workload has already started or been restored.</exception>
    public void RestoreState(ReadOnlySpan<byte> state)
    {
        if (Volatile.Read(ref _started) != 0 || _restored)
            throw new InvalidOperationException($"workload {Name} has already started or been restored: state can be restored only once, before it runs.");
        var records = WorkloadStateFormat.Read(state, Name, Vcpus);
        var counters = new PaddedCounter[Vcpus];
        var registers = new VcpuState?[Vcpus];
        for (int i = 0; i < Vcpus; i++)
        {
            counters[i].Value = records[i].Operations;
            registers[i] = CreateVcpuState(i);
            var bytes = records[i].Registers;
            if (registers[i] is not { } r)
            {
                if (bytes.Length != 0) throw new InvalidDataException($"workload state gives {Name}'s vCPU {i} {bytes.Length} bytes of registers; its vCPUs have none.");
                continue;
            }
            using var reader = new BinaryReader(new MemoryStream(bytes, writable: false));
            try
            {
                r.Load(reader);
            }
            catch (EndOfStreamException)
            {
                throw new InvalidDataException($"workload state: {Name}'s vCPU {i} registers end early ({bytes.Length} bytes).");
            }
            if (reader.BaseStream.Position != bytes.Length)
                throw new InvalidDataException($"workload state: {Name}'s vCPU {i} registers have {bytes.Length - reader.BaseStream.Position} bytes left over.");
        }
        _counters = counters;
        Volatile.Write(ref _registers, registers);
        _restored = true;
    }

    /// <summary>Whether this workload continues a captured state (set by <see cref="RestoreState"/>).</summary>
    public bool IsRestored => _restored;

    private static byte[] SaveRegisters(VcpuState? registers)
    {
        if (registers is null) return [];
        var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream)) registers.Save(writer);
        return stream.ToArray();
    }

    /// <summary>vCPU <paramref name="index"/>'s initial registers for a fresh start; null (the default) for a vCPU with none.</summary>
    protected virtual VcpuState? CreateVcpuState(int index) => null;

    /// <summary>vCPU <paramref name="index"/>'s registers (fresh or restored), or null before the workload runs or is restored.</summary>
    protected VcpuState? StateOf(int index)
    {
        var registers = Volatile.Read(ref _registers);
        return index < registers.Length ? registers[index] : null;
    }

    /// <summary>Opens a commit of vCPU <paramref name="index"/>'s registers; call after the operation's last guest-memory access.</summary>
    protected void BeginCommit(int index)
    {
        ref long seq = ref _counters[index].Sequence;
        Volatile.Write(ref seq, seq + 1);
    }

    /// <summary>Closes the commit, counting <paramref name="operations"/> with it.</summary>
    protected void EndCommit(int index, long operations)
    {
        ref var c = ref _counters[index];
        Volatile.Write(ref c.Value, c.Value + operations);
        Volatile.Write(ref c.Sequence, c.Sequence + 1);
    }

    /// <summary>Checks that the workload fits <paramref name="mmu"/>'s memory (throws naming the option that does not); runs before any vCPU starts.</summary>
    protected virtual void Prepare(SoftwareMmu mmu) { }

    /// <summary>The body of vCPU <paramref name="index"/>; returns or throws OperationCanceledException when <paramref name="cancellationToken"/> fires.</summary>
    protected abstract void RunVcpu(VirtualCpu cpu, int index, CancellationToken cancellationToken);

    /// <summary>Counts <paramref name="operations"/> for vCPU <paramref name="index"/> (no contention between vCPUs); for a vCPU without registers (inside a commit, use <see cref="EndCommit"/>).</summary>
    protected void Count(int index, long operations)
    {
        ref long v = ref _counters[index].Value;
        Volatile.Write(ref v, v + operations);
    }
}
