using System.Runtime.InteropServices;
using MigrationFabric.Memory.Mmu;

namespace MigrationFabric.Memory.Workloads;

/// <summary>A guest program: vCPU threads running inside guest memory through the MMU, reporting throughput every sample interval.</summary>
public abstract class Workload
{
    private PaddedCounter[] _counters = [];
    private int _started;

    [StructLayout(LayoutKind.Explicit, Size = 128)]
    private struct PaddedCounter
    {
        [FieldOffset(64)] public long Value;
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
        _counters = new PaddedCounter[Vcpus];
        using var failed = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var stop = failed.Token;
        long start = Time.GetTimestamp();
        long lastTs = start, lastOps = 0;
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

    /// <summary>Checks that the workload fits <paramref name="mmu"/>'s memory (throws naming the option that does not); runs before any vCPU starts.</summary>
    protected virtual void Prepare(SoftwareMmu mmu) { }

    /// <summary>The body of vCPU <paramref name="index"/>; returns or throws OperationCanceledException when <paramref name="cancellationToken"/> fires.</summary>
    protected abstract void RunVcpu(VirtualCpu cpu, int index, CancellationToken cancellationToken);

    /// <summary>Counts <paramref name="operations"/> for vCPU <paramref name="index"/> (no contention between vCPUs).</summary>
    protected void Count(int index, long operations)
    {
        ref long v = ref _counters[index].Value;
        Volatile.Write(ref v, v + operations);
    }
}
