using System.Diagnostics;
using MigrationFabric.Grains.Filters;
using MigrationFabric.Grains.Membership;
using MigrationFabric.Grains.Runtime;
using MigrationFabric.Grains.Storage;

namespace MigrationFabric.Grains.Activation;

/// <summary>Lifecycle of one activation.</summary>
internal enum ActivationState { Created, Activating, Valid, Deactivating, Invalid }

/// <summary>One activation of a grain: its instance, its turn-based scheduler, its queue of waiting requests.</summary>
/// <remarks>
/// Every turn (OnActivateAsync, each request, OnDeactivateAsync) runs on the activation's exclusive
/// scheduler, so grain code never runs on two threads at once and its awaits resume there. A
/// non-reentrant grain also runs one request at a time from start to finish; a [Reentrant] grain or
/// an [AlwaysInterleave] method interleaves at await points.
/// </remarks>
internal sealed class ActivationData : IGrainContext
{
    private readonly SiloRuntime _runtime;
    private readonly GrainTypeRegistration _type;
    private readonly TaskScheduler _scheduler;
    private readonly Queue<ActivationRequest> _waiting = new();
    private readonly object _gate = new();
    private readonly TaskCompletionSource _deactivated = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Grain? _grain;
    private ActivationState _state = ActivationState.Created;
    private int _inFlight;
    private bool _exclusiveRunning;
    private bool _deactivateRequested;
    private DeactivationReason _deactivationReason;
    private long _lastActivityTicks;
    private bool _registered;
    private Exception? _failure;

    public ActivationData(SiloRuntime runtime, GrainId id, GrainTypeRegistration type)
    {
        _runtime = runtime;
        _type = type;
        GrainId = id;
        _lastActivityTicks = runtime.Time.GetTimestamp();
        _scheduler = new ConcurrentExclusiveSchedulerPair(runtime.TurnScheduler, 1).ExclusiveScheduler;
    }

    public GrainId GrainId { get; }
    public SiloAddress Silo => _runtime.Self;
    public IGrainFactory GrainFactory => _runtime.GrainFactory;
    public IServiceProvider Services => _runtime.Services;

    /// <summary>Completes when the activation is gone (deactivated or failed to activate).</summary>
    public Task Deactivated => _deactivated.Task;

    public ActivationState State { get { lock (_gate) return _state; } }

    /// <summary>Why the activation failed (another silo won the grain, registration or OnActivateAsync failed), or null.</summary>
    public Exception? Failure => Volatile.Read(ref _failure);

    /// <summary>True once the directory recorded this silo as the grain's home (set atomically with the ring view check).</summary>
    public bool IsRegistered => Volatile.Read(ref _registered);

    /// <summary>True when idle (nothing running or queued) since before <paramref name="idleSinceTimestamp"/>.</summary>
    public bool IsIdleSince(long idleSinceTimestamp)
    {
        lock (_gate)
            return _state == ActivationState.Valid && _inFlight == 0 && _waiting.Count == 0 && _lastActivityTicks < idleSinceTimestamp;
    }

    public IPersistentState<T> GetPersistentState<T>(string stateName, string storageName = SiloBuilder.DefaultStorageName) =>
        new PersistentState<T>(new GrainStateKey(stateName, GrainId.ToString()), _runtime.GetStorage(storageName));

    public void DeactivateOnIdle() => RequestDeactivation(DeactivationReason.ApplicationRequested);

    /// <summary>Queues <paramref name="request"/>; false when the activation is going away (the caller retries elsewhere).</summary>
    public bool TryEnqueue(ActivationRequest request)
    {
        lock (_gate)
        {
            if (_state is ActivationState.Deactivating or ActivationState.Invalid || _deactivateRequested)
                return false;
            _lastActivityTicks = _runtime.Time.GetTimestamp();
            if (_state == ActivationState.Valid && CanStart(request))
                StartLocked(request);
            else
                _waiting.Enqueue(request);
            return true;
        }
    }

    /// <summary>Registers in the directory, builds the grain and runs OnActivateAsync; then serves the queue.</summary>
    public async Task ActivateAsync()
    {
        lock (_gate) _state = ActivationState.Activating;
        SiloAddress winner;
        try
        {
            winner = await _runtime.Locator.RegisterAsync(GrainId, () => Volatile.Write(ref _registered, true), _runtime.StoppingToken).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            Fail(new GrainRoutingException($"Grain {GrainId} could not be registered in the grain directory: {e.Message}", e), unregister: false);
            return;
        }
        if (!winner.Equals(_runtime.Self))
        {
            // Another silo's activation won the race for this id: this one never runs grain code.
            Fail(new ActivationForwardedException(GrainId, winner), unregister: false);
            return;
        }
        try
        {
            await RunTurnAsync(async () =>
            {
                var grain = _type.Factory(this);
                grain.GrainContext = this;
                _grain = grain;
                await grain.OnActivateAsync(_runtime.StoppingToken);
            }).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            _runtime.Log.ActivationFailed(GrainId, e);
            Fail(new InvalidOperationException($"Activation of grain {GrainId} failed: OnActivateAsync of {_type.GrainClass.Name} threw {e.GetType().Name}: {e.Message}", e), unregister: true);
            return;
        }
        lock (_gate)
        {
            _state = ActivationState.Valid;
            PumpLocked();
            MaybeDeactivateLocked();
        }
    }

    /// <summary>Begins deactivation once the running requests finish; requests arriving after it are retried elsewhere.</summary>
    public void RequestDeactivation(DeactivationReason reason)
    {
        lock (_gate)
        {
            if (_state is ActivationState.Deactivating or ActivationState.Invalid || _deactivateRequested)
                return;
            _deactivateRequested = true;
            _deactivationReason = reason;
            MaybeDeactivateLocked();
        }
    }

    private bool CanStart(ActivationRequest request) =>
        _type.IsReentrant || request.Method.AlwaysInterleave || !_exclusiveRunning;

    private void StartLocked(ActivationRequest request)
    {
        _inFlight++;
        bool exclusive = !(_type.IsReentrant || request.Method.AlwaysInterleave);
        if (exclusive) _exclusiveRunning = true;
        _ = RunRequestAsync(request, exclusive);
    }

    private void PumpLocked()
    {
        while (_waiting.Count > 0 && _state == ActivationState.Valid && !_deactivateRequested && CanStart(_waiting.Peek()))
            StartLocked(_waiting.Dequeue());
    }

    private async Task RunRequestAsync(ActivationRequest request, bool exclusive)
    {
        try
        {
            var result = await RunTurnAsync(async () =>
            {
                using var activity = _runtime.Tracing.StartServerActivity(request);
                var filters = _runtime.IncomingFilters;
                if (filters.Count == 0)
                    return await request.Descriptor.Invoke(_grain!, request.Method.Id, request.Args);
                var context = new IncomingCallContext(filters, _grain!, GrainId, request.Descriptor, request.Method, request.Args);
                await context.Invoke();
                return context.Result;
            }).ConfigureAwait(false);
            request.Completion.TrySetResult(result);
        }
        catch (Exception e)
        {
            request.Completion.TrySetException(e);
        }
        finally
        {
            lock (_gate)
            {
                _inFlight--;
                if (exclusive) _exclusiveRunning = false;
                _lastActivityTicks = _runtime.Time.GetTimestamp();
                PumpLocked();
                MaybeDeactivateLocked();
            }
        }
    }

    private void MaybeDeactivateLocked()
    {
        if (!_deactivateRequested || _state != ActivationState.Valid || _inFlight > 0)
            return;
        _state = ActivationState.Deactivating;
        var retry = _waiting.ToArray();
        _waiting.Clear();
        _ = DeactivateAsync(retry);
    }

    private async Task DeactivateAsync(ActivationRequest[] retry)
    {
        try
        {
            await RunTurnAsync(() => _grain!.OnDeactivateAsync(_deactivationReason, CancellationToken.None)).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            _runtime.Log.DeactivationFailed(GrainId, e);
        }
        await FinishAsync(unregister: true).ConfigureAwait(false);
        foreach (var r in retry)
            r.Completion.TrySetException(new ActivationRetryException());
    }

    private void Fail(Exception error, bool unregister)
    {
        ActivationRequest[] waiting;
        Volatile.Write(ref _failure, error);
        lock (_gate)
        {
            _state = ActivationState.Invalid;
            waiting = _waiting.ToArray();
            _waiting.Clear();
        }
        _ = FinishAsync(unregister);
        foreach (var r in waiting)
            r.Completion.TrySetException(error);
    }

    private async Task FinishAsync(bool unregister)
    {
        lock (_gate) _state = ActivationState.Invalid;
        Volatile.Write(ref _registered, false);
        if (unregister)
        {
            // Unregister while still in the catalog: requests meanwhile wait for Deactivated, so a new activation
            // cannot register before this entry is gone (and then lose it to this late unregister).
            try
            {
                using var timeout = new CancellationTokenSource(_runtime.Options.DirectoryRetryTimeout);
                await _runtime.Locator.UnregisterAsync(GrainId, _runtime.Self, timeout.Token).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                // A stale entry heals itself: the next call reaches this silo, which activates anew and re-registers.
                _runtime.Log.UnregisterFailed(GrainId, e);
            }
        }
        _runtime.Catalog.Remove(this);
        _deactivated.TrySetResult();
    }

    private Task RunTurnAsync(Func<Task> turn)
    {
        // Suppress flow so the caller's AsyncLocals (its Activity) do not leak into the grain; the trace
        // context travels explicitly with the request instead.
        using (ExecutionContext.SuppressFlow())
            return Task.Factory.StartNew(turn, CancellationToken.None, TaskCreationOptions.DenyChildAttach, _scheduler).Unwrap();
    }

    private Task<T> RunTurnAsync<T>(Func<Task<T>> turn)
    {
        using (ExecutionContext.SuppressFlow())
            return Task.Factory.StartNew(turn, CancellationToken.None, TaskCreationOptions.DenyChildAttach, _scheduler).Unwrap();
    }

    public override string ToString() => $"activation {GrainId} on {_runtime.Self}";
}
