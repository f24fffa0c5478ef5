using System.Collections.Concurrent;
using System.Diagnostics;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Metrics;
using MigrationFabric.Memory.Pages;

namespace MigrationFabric.Memory.Mmu;

/// <summary>The guest's MMU: vCPUs access memory through it; it resolves faults, coalesces them per page, and pauses or throttles vCPUs.</summary>
public sealed class SoftwareMmu : IDisposable
{
    internal const int ControlPaused = 1, ControlThrottled = 2, ControlDisposed = 4;

    private readonly ConcurrentDictionary<long, PendingFault> _pending = new();
    private readonly CancellationTokenSource _lifetime = new();
    private readonly ManualResetEventSlim _running = new(initialState: true);
    private readonly SoftwareMmuOptions _options;
    private readonly Lock _controlLock = new();
    private int _nextVcpuId;
    private int _control;
    private double _throttle;
    private IPageFaultHandler? _handler;
    private long _faults, _coalesced, _firstTouches, _deflatesOnTouch, _throttleSleeps;

    /// <summary>Creates the MMU of <paramref name="memory"/>.</summary>
    public SoftwareMmu(GuestMemory memory, IPageFaultHandler? faultHandler = null, SoftwareMmuOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(memory);
        _options = options ?? new SoftwareMmuOptions();
        _options.Validate();
        Memory = memory;
        _handler = faultHandler;
    }

    /// <summary>The guest memory this MMU translates into.</summary>
    public GuestMemory Memory { get; }

    /// <summary>Who makes Swapped and Remote pages present; null makes such a fault an error.</summary>
    public IPageFaultHandler? FaultHandler
    {
        get => Volatile.Read(ref _handler);
        set => Volatile.Write(ref _handler, value);
    }

    /// <summary>Time from a vCPU's fault to its page being present, per faulting vCPU (coalesced waiters included).</summary>
    public LatencyHistogram FaultLatency { get; } = new();

    /// <summary>Per fault handler call, from this MMU calling the handler to the faulting vCPU running again: the handler's own time plus the vCPU thread's wake-up after it.</summary>
    /// <remarks>Set against the handler's own timing, this shows what the vCPU thread's scheduling adds: on oversubscribed cores a
    /// vCPU that spins between faults is the thread the OS scheduler wakes last.</remarks>
    public LatencyHistogram HandlerCallLatency { get; } = new();

    /// <summary>Faults that called the handler.</summary>
    public long FaultsResolved => Volatile.Read(ref _faults);

    /// <summary>Faults that waited on another vCPU's resolution of the same page instead of calling the handler.</summary>
    public long FaultsCoalesced => Volatile.Read(ref _coalesced);

    /// <summary>Zero pages made resident by a vCPU's first touch (no handler).</summary>
    public long FirstTouches => Volatile.Read(ref _firstTouches);

    /// <summary>Ballooned pages the guest touched and so took back from the balloon on demand.</summary>
    public long DeflatesOnTouch => Volatile.Read(ref _deflatesOnTouch);

    /// <summary>Times a throttled vCPU gave up its slice (auto-converge at work).</summary>
    public long ThrottleSleeps => Volatile.Read(ref _throttleSleeps);

    /// <summary>Whether vCPUs are held out of guest memory.</summary>
    public bool IsPaused => (Volatile.Read(ref _control) & ControlPaused) != 0;

    /// <summary>Fraction of time each vCPU sleeps (auto-converge); 0 runs at full speed.</summary>
    public double Throttle => Volatile.Read(ref _throttle);

    internal int Control => Volatile.Read(ref _control);

    internal SoftwareMmuOptions Options => _options;

    /// <summary>Creates a vCPU; use it from one thread, a dedicated one (it blocks on faults, pauses and throttling).</summary>
    /// <param name="cancellationToken">Ends the vCPU's waits (fault, pause, throttle) with OperationCanceledException.</param>
    public VirtualCpu CreateVcpu(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_lifetime.IsCancellationRequested, this);
        return new VirtualCpu(this, Interlocked.Increment(ref _nextVcpuId) - 1, Memory.Hazards.Register(), cancellationToken);
    }

    /// <summary>Stops every vCPU at its next memory access and returns once none is inside guest memory (switch-over).</summary>
    public void Pause(CancellationToken cancellationToken = default)
    {
        lock (_controlLock)
        {
            _running.Reset();
            _control |= ControlPaused;
        }
        Memory.Hazards.WaitUntilAllOutside(cancellationToken);
    }

    /// <summary>Lets paused vCPUs run again.</summary>
    public void Resume()
    {
        lock (_controlLock)
        {
            _control &= ~ControlPaused;
            _running.Set();
        }
    }

    /// <summary>Sets the fraction of time vCPUs sleep, 0 (none) to 0.99, as QEMU's auto-converge throttle.</summary>
    public void SetThrottle(double fraction)
    {
        if (double.IsNaN(fraction) || fraction < 0 || fraction > 0.99)
            throw new ArgumentOutOfRangeException(nameof(fraction), fraction, "throttle must be within 0..0.99.");
        lock (_controlLock)
        {
            Volatile.Write(ref _throttle, fraction);
            if (fraction > 0) _control |= ControlThrottled; else _control &= ~ControlThrottled;
        }
    }

    /// <summary>Ends every vCPU wait and cancels handlers in flight; returns once no vCPU is inside guest memory, and none enters it again.</summary>
    /// <remarks>
    /// The owner unmaps the guest memory right after this, so a vCPU still alive (one whose thread outlives the VM,
    /// or one paused at switch-over) must not run on: every later access ends in ObjectDisposedException instead.
    /// </remarks>
    public void Dispose()
    {
        lock (_controlLock)
        {
            if ((_control & ControlDisposed) != 0) return;
            _control = ControlDisposed;
        }
        _lifetime.Cancel();
        _running.Set();
        Memory.Hazards.WaitUntilAllOutside(CancellationToken.None);
    }

    /// <summary>Handles pause and throttle for a vCPU that is outside guest memory.</summary>
    internal void OnControl(VirtualCpu vcpu)
    {
        int control = Control;
        ObjectDisposedException.ThrowIf((control & ControlDisposed) != 0, this);
        if ((control & ControlPaused) != 0)
        {
            Volatile.Write(ref vcpu.Slot.Parked, 1);
            try { _running.Wait(vcpu.CancellationToken); }
            finally { Volatile.Write(ref vcpu.Slot.Parked, 0); }
            // Woken by Dispose, not by Resume: the memory is about to be unmapped.
            ObjectDisposedException.ThrowIf((Control & ControlDisposed) != 0, this);
        }
        if ((control & ControlThrottled) != 0)
        {
            double t = Throttle;
            long now = Stopwatch.GetTimestamp();
            if (vcpu.RunStart == 0) vcpu.RunStart = now;
            var ran = Stopwatch.GetElapsedTime(vcpu.RunStart, now);
            if (ran >= _options.ThrottleSlice * (1 - t))
            {
                // Sleeping on a cancellation handle (not Thread.Sleep) so stop and dispose end the sleep at once.
                var sleep = _options.ThrottleSlice * t;
                Interlocked.Increment(ref _throttleSleeps);
                vcpu.CancellationToken.WaitHandle.WaitOne(sleep);
                vcpu.CancellationToken.ThrowIfCancellationRequested();
                vcpu.RunStart = Stopwatch.GetTimestamp();
            }
        }
    }

    internal void CountFirstTouch(PageResidency from)
    {
        if (from == PageResidency.Ballooned) Interlocked.Increment(ref _deflatesOnTouch);
        else Interlocked.Increment(ref _firstTouches);
    }

    /// <summary>Makes a Swapped or Remote page present for <paramref name="vcpu"/>, calling the handler once per page however many vCPUs fault together.</summary>
    internal void ResolveFault(VirtualCpu vcpu, long page, PageAccess access)
    {
        long start = Stopwatch.GetTimestamp();
        try
        {
            while (true)
            {
                if (_pending.TryGetValue(page, out var existing))
                {
                    Interlocked.Increment(ref _coalesced);
                    existing.Wait(page, vcpu.CancellationToken);
                    return;
                }
                var mine = new PendingFault();
                if (!_pending.TryAdd(page, mine)) continue;
                Lead(vcpu, page, access, mine);
                return;
            }
        }
        finally
        {
            FaultLatency.RecordSince(start);
        }
    }

    private void Lead(VirtualCpu vcpu, long page, PageAccess access, PendingFault mine)
    {
        Task? inFlight = null;
        try
        {
            // Re-read under our claim: the page may have arrived between the vCPU's check and the claim.
            var now = (PageResidency)Memory.ResidencyByte(page);
            if (now is PageResidency.Swapped or PageResidency.Remote)
            {
                var handler = FaultHandler
                    ?? throw new PageFaultException(page, $"the page is {now} and no fault handler is installed.");
                Interlocked.Increment(ref _faults);
                ValueTask vt;
                long called = Stopwatch.GetTimestamp();
                try { vt = handler.ResolveAsync(new PageFault(Memory, page, now, access, vcpu.Id), _lifetime.Token); }
                catch (Exception e) when (e is not PageFaultException) { throw new PageFaultException(page, "the fault handler failed.", e); }
                if (vt.IsCompletedSuccessfully) vt.GetAwaiter().GetResult();
                else
                {
                    inFlight = vt.AsTask();
                    WaitForHandler(inFlight, page, vcpu.CancellationToken);
                }
                HandlerCallLatency.RecordSince(called);
            }
            Finish(page, mine, null);
        }
        catch (OperationCanceledException) when (inFlight is { IsCompleted: false })
        {
            // This vCPU stopped waiting but the handler still runs: whoever else waits is released when it ends.
            inFlight.ContinueWith(t => Finish(page, mine, t.Exception?.InnerException), CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            throw;
        }
        catch (Exception e)
        {
            var error = e as PageFaultException ?? new PageFaultException(page, "the fault handler failed.", e);
            Finish(page, mine, error);
            if (ReferenceEquals(error, e)) throw;
            throw error;
        }
    }

    private static void WaitForHandler(Task task, long page, CancellationToken cancellationToken)
    {
        try { task.Wait(cancellationToken); }
        catch (AggregateException ae) when (ae.InnerExceptions.Count == 1)
        {
            var inner = ae.InnerExceptions[0];
            if (inner is OperationCanceledException oce) throw new PageFaultException(page, "the fault handler was cancelled.", oce);
            throw new PageFaultException(page, "the fault handler failed.", inner);
        }
    }

    private void Finish(long page, PendingFault mine, Exception? error)
    {
        _pending.TryRemove(new KeyValuePair<long, PendingFault>(page, mine));
        mine.Complete(error is null or PageFaultException ? error : new PageFaultException(page, "the fault handler failed.", error));
    }

    /// <summary>One page's resolution in flight; every vCPU faulting on the page waits on it.</summary>
    private sealed class PendingFault
    {
        private readonly ManualResetEventSlim _done = new();
        private Exception? _error;

        public void Complete(Exception? error)
        {
            _error = error;
            _done.Set();
        }

        public void Wait(long page, CancellationToken cancellationToken)
        {
            _done.Wait(cancellationToken);
            if (_error is { } e) throw new PageFaultException(page, "the fault handler failed (another vCPU's resolution of this page).", e);
        }
    }
}
