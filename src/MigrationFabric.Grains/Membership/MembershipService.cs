using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace MigrationFabric.Grains.Membership;

/// <summary>One silo's membership agent: joins the table, heartbeats, probes its ring successors, votes and declares deaths.</summary>
/// <remarks>
/// Lifecycle: <see cref="StartAsync"/> (row inserted as Joining, loops running) -> <see cref="BecomeActiveAsync"/>
/// -> <see cref="ShutdownAsync"/> (ShuttingDown, then Dead). <see cref="DisposeAsync"/> stops the loops
/// without writing anything, which is what a crash looks like to the other silos.
/// </remarks>
public sealed partial class MembershipService : IClusterMembership, IAsyncDisposable
{
    private readonly IMembershipTable _table;
    private readonly IProbe _probe;
    private readonly MembershipOptions _options;
    private readonly SuspicionPolicy _policy;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly string _siloName;
    private readonly CancellationTokenSource _stop = new();
    private readonly object _gate = new();
    private readonly List<(Func<MembershipSnapshot, bool> Predicate, TaskCompletionSource<MembershipSnapshot> Done)> _waiters = [];
    private readonly Channel<MembershipSnapshot> _changes = Channel.CreateUnbounded<MembershipSnapshot>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Dictionary<SiloAddress, int> _missedProbes = new();
    private readonly List<Task> _loops = [];
    private MembershipSnapshot _current = MembershipSnapshot.Empty;
    private int _started;
    private int _selfDead;
    private int _leaving;
    private int _disposed;

    /// <summary>Creates the agent for <paramref name="self"/>; nothing is written until <see cref="StartAsync"/>.</summary>
    public MembershipService(SiloAddress self, IMembershipTable table, IProbe probe, MembershipOptions? options = null,
        TimeProvider? time = null, ILogger<MembershipService>? logger = null, string? siloName = null)
    {
        ArgumentNullException.ThrowIfNull(self);
        ArgumentNullException.ThrowIfNull(table);
        ArgumentNullException.ThrowIfNull(probe);
        _options = options ?? new MembershipOptions();
        _policy = new SuspicionPolicy(_options);
        Self = self;
        _table = table;
        _probe = probe;
        _time = time ?? TimeProvider.System;
        _logger = logger ?? (ILogger)NullLogger.Instance;
        _siloName = siloName ?? self.Endpoint;
    }

    /// <inheritdoc />
    public SiloAddress Self { get; }

    /// <inheritdoc />
    public MembershipSnapshot Current => Volatile.Read(ref _current);

    /// <inheritdoc />
    public event Action<MembershipSnapshot>? Changed;

    /// <inheritdoc />
    public event Action<SiloAddress>? SelfDeclaredDead;

    /// <summary>True once this silo saw its own row declared Dead (it has stopped its loops).</summary>
    public bool IsDeclaredDead => Volatile.Read(ref _selfDead) != 0;

    /// <summary>Joins the cluster: supersedes older generations of this endpoint, inserts this row as Joining, starts the loops.</summary>
    /// <exception cref="SiloDeclaredDeadException">This identity is already Dead, or a newer generation of this endpoint exists.</exception>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (Interlocked.Exchange(ref _started, 1) != 0)
            throw new InvalidOperationException($"Membership of silo {Self} was already started.");
        await _table.InitializeAsync(cancellationToken).ConfigureAwait(false);
        DateTimeOffset deadline = _time.GetUtcNow() + _options.MaxJoinAttemptTime;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var data = await _table.ReadAllAsync(cancellationToken).ConfigureAwait(false);
            if (await TryJoinAsync(data, cancellationToken).ConfigureAwait(false))
                break;
            if (_time.GetUtcNow() > deadline)
                throw new MembershipTableException(
                    $"Silo {Self} could not join within MembershipOptions.MaxJoinAttemptTime ({_options.MaxJoinAttemptTime}): every insert lost a race.");
            await Task.Delay(TimeSpan.FromMilliseconds(Random.Shared.Next(1, 20)), _time, cancellationToken).ConfigureAwait(false);
        }
        LogJoined(_logger, Self);
        await RefreshAsync(cancellationToken).ConfigureAwait(false);
        _loops.Add(Task.Run(DispatchChangesAsync, CancellationToken.None));
        _loops.Add(Task.Run(() => HeartbeatLoopAsync(_stop.Token), CancellationToken.None));
        _loops.Add(Task.Run(() => PollLoopAsync(_stop.Token), CancellationToken.None));
        _loops.Add(Task.Run(() => ProbeLoopAsync(_stop.Token), CancellationToken.None));
    }

    /// <summary>Marks this silo Active: it now belongs to the ring the others route to.</summary>
    public Task BecomeActiveAsync(CancellationToken cancellationToken) =>
        MoveOwnStatusAsync(SiloStatus.Active, cancellationToken);

    /// <summary>Marks this silo ShuttingDown (still answering; the runtime drains its activations next).</summary>
    public Task BeginShutdownAsync(CancellationToken cancellationToken) =>
        MoveOwnStatusAsync(SiloStatus.ShuttingDown, cancellationToken);

    /// <summary>Leaves gracefully: ShuttingDown (if not already), stops the loops, then writes Dead.</summary>
    public async Task ShutdownAsync(CancellationToken cancellationToken)
    {
        await MoveOwnStatusAsync(SiloStatus.ShuttingDown, cancellationToken).ConfigureAwait(false);
        await StopLoopsAsync().ConfigureAwait(false);
        Volatile.Write(ref _leaving, 1);
        await MoveOwnStatusAsync(SiloStatus.Dead, cancellationToken).ConfigureAwait(false);
        LogLeft(_logger, Self);
    }

    /// <summary>Stops the loops without writing to the table (to the others this looks like a crash).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        await StopLoopsAsync().ConfigureAwait(false);
        lock (_gate)
        {
            foreach (var w in _waiters)
                w.Done.TrySetException(new ObjectDisposedException(nameof(MembershipService), $"Membership of silo {Self} stopped."));
            _waiters.Clear();
        }
        _stop.Dispose();
    }

    /// <inheritdoc />
    public async Task RefreshAsync(CancellationToken cancellationToken)
    {
        var data = await _table.ReadAllAsync(cancellationToken).ConfigureAwait(false);
        Apply(data);
    }

    /// <inheritdoc />
    public Task<MembershipSnapshot> WaitForAsync(Func<MembershipSnapshot, bool> predicate, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(predicate);
        var done = new TaskCompletionSource<MembershipSnapshot>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            if (predicate(_current))
                return Task.FromResult(_current);
            _waiters.Add((predicate, done));
        }
        if (!cancellationToken.CanBeCanceled)
            return done.Task;
        return WaitCancellableAsync(done, cancellationToken);
    }

    private async Task<MembershipSnapshot> WaitCancellableAsync(TaskCompletionSource<MembershipSnapshot> done, CancellationToken cancellationToken)
    {
        try
        {
            return await done.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            lock (_gate)
                _waiters.RemoveAll(w => ReferenceEquals(w.Done, done));
        }
    }

    private async Task<bool> TryJoinAsync(MembershipTableData data, CancellationToken cancellationToken)
    {
        var own = data.Find(Self);
        if (own is not null)
        {
            if (own.Entry.Status == SiloStatus.Dead)
                throw new SiloDeclaredDeadException(Self,
                    $"Silo {Self} was already declared dead; a dead identity never returns. Restart with a new generation.");
            return true; // our own earlier insert committed although its call failed
        }
        DateTimeOffset now = _time.GetUtcNow();
        foreach (var row in data.Rows)
        {
            var other = row.Entry.Silo;
            if (!other.IsSameEndpoint(Self) || row.Entry.Status == SiloStatus.Dead)
                continue;
            if (other.Generation > Self.Generation)
                throw new SiloDeclaredDeadException(Self,
                    $"Silo {Self} is superseded by the newer generation {other} on the same endpoint.");
            // Our previous incarnation on this endpoint is certainly gone: declare it dead before joining.
            var dead = row.Entry with { Status = SiloStatus.Dead };
            if (await _table.UpdateRowAsync(dead, row.Etag, data.Version.Next(), cancellationToken).ConfigureAwait(false))
                LogDeclaredDead(_logger, other, Self, "superseded by a new generation");
            return false; // the version moved either way: re-read
        }
        var entry = new MembershipEntry(Self, SiloStatus.Joining, now, now, [], _siloName);
        return await _table.InsertRowAsync(entry, data.Version.Next(), cancellationToken).ConfigureAwait(false);
    }

    private async Task MoveOwnStatusAsync(SiloStatus target, CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _started) == 0)
            throw new InvalidOperationException($"Membership of silo {Self} is not started; call StartAsync first.");
        while (true)
        {
            var data = await _table.ReadAllAsync(cancellationToken).ConfigureAwait(false);
            Apply(data);
            var row = data.Find(Self)
                ?? throw new MembershipTableException($"Silo {Self} has no row in the membership table (was it cleaned up?).");
            if (row.Entry.Status == SiloStatus.Dead)
            {
                if (target == SiloStatus.Dead)
                    return;
                throw new SiloDeclaredDeadException(Self, $"Silo {Self} cannot become {target}: it was declared dead.");
            }
            if (row.Entry.Status >= target)
                return;
            var entry = row.Entry with { Status = target, IAmAliveTime = _time.GetUtcNow() };
            if (await _table.UpdateRowAsync(entry, row.Etag, data.Version.Next(), cancellationToken).ConfigureAwait(false))
            {
                LogStatus(_logger, Self, target);
                await RefreshAsync(cancellationToken).ConfigureAwait(false);
                return;
            }
        }
    }

    private void Apply(MembershipTableData data)
    {
        bool selfDead = false;
        lock (_gate)
        {
            if (data.Version.Version <= _current.Version)
                return;
            var snapshot = new MembershipSnapshot(data.Version.Version, data.Rows.Select(r => r.Entry));
            Volatile.Write(ref _current, snapshot);
            _changes.Writer.TryWrite(snapshot);
            for (int i = _waiters.Count - 1; i >= 0; i--)
            {
                if (_waiters[i].Predicate(snapshot))
                {
                    _waiters[i].Done.TrySetResult(snapshot);
                    _waiters.RemoveAt(i);
                }
            }
            if (Volatile.Read(ref _started) != 0 && Volatile.Read(ref _leaving) == 0 && snapshot.GetStatus(Self) == SiloStatus.Dead)
                selfDead = Interlocked.Exchange(ref _selfDead, 1) == 0;
        }
        if (selfDead)
        {
            LogSelfDead(_logger, Self);
            try
            {
                _stop.Cancel();
            }
            catch (ObjectDisposedException)
            {
                // Already disposed: the loops are gone anyway.
            }
            var handler = SelfDeclaredDead;
            if (handler is not null)
                _ = Task.Run(() => handler(Self));
        }
    }

    private async Task DispatchChangesAsync()
    {
        await foreach (var snapshot in _changes.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            try
            {
                Changed?.Invoke(snapshot);
            }
            catch (Exception e)
            {
                LogHandlerFailed(_logger, e, Self);
            }
        }
    }

    private async Task HeartbeatLoopAsync(CancellationToken stop)
    {
        using var timer = new PeriodicTimer(_options.IAmAlivePublishPeriod, _time);
        while (await WaitTickAsync(timer, stop).ConfigureAwait(false))
        {
            try
            {
                await _table.UpdateIAmAliveAsync(Self, _time.GetUtcNow(), stop).ConfigureAwait(false);
            }
            catch (Exception e) when (!stop.IsCancellationRequested)
            {
                LogTableFailed(_logger, e, Self, "heartbeat");
            }
            catch (Exception) when (stop.IsCancellationRequested)
            {
                return; // stopped in the middle of a call
            }
        }
    }

    private async Task PollLoopAsync(CancellationToken stop)
    {
        using var timer = new PeriodicTimer(_options.TableVersionPollPeriod, _time);
        DateTimeOffset lastPeriodic = _time.GetUtcNow();
        while (await WaitTickAsync(timer, stop).ConfigureAwait(false))
        {
            try
            {
                var now = _time.GetUtcNow();
                if (now - lastPeriodic >= _options.TableRefreshTimeout)
                {
                    // Heartbeats move no version, so stale ones are only seen by this periodic full read.
                    lastPeriodic = now;
                    await RefreshAsync(stop).ConfigureAwait(false);
                    await CheckStaleHeartbeatsAsync(stop).ConfigureAwait(false);
                    continue;
                }
                var version = await _table.ReadVersionAsync(stop).ConfigureAwait(false);
                if (version.Version != Current.Version)
                    await RefreshAsync(stop).ConfigureAwait(false);
            }
            catch (Exception e) when (!stop.IsCancellationRequested)
            {
                LogTableFailed(_logger, e, Self, "table refresh");
            }
            catch (Exception) when (stop.IsCancellationRequested)
            {
                return; // stopped in the middle of a call
            }
        }
    }

    private async Task ProbeLoopAsync(CancellationToken stop)
    {
        using var timer = new PeriodicTimer(_options.ProbeTimeout, _time);
        while (await WaitTickAsync(timer, stop).ConfigureAwait(false))
        {
            try
            {
                await ProbeRoundAsync(stop).ConfigureAwait(false);
            }
            catch (Exception e) when (!stop.IsCancellationRequested)
            {
                LogTableFailed(_logger, e, Self, "probe round");
            }
            catch (Exception) when (stop.IsCancellationRequested)
            {
                return; // stopped in the middle of a call
            }
        }
    }

    private async Task ProbeRoundAsync(CancellationToken stop)
    {
        var targets = MonitoredSilos(Current);
        foreach (var gone in _missedProbes.Keys.Where(s => !targets.Contains(s)).ToList())
            _missedProbes.Remove(gone);
        var results = await Task.WhenAll(targets.Select(t => ProbeOnceAsync(t, stop))).ConfigureAwait(false);
        for (int i = 0; i < targets.Count; i++)
        {
            var target = targets[i];
            if (results[i])
            {
                _missedProbes.Remove(target);
                continue;
            }
            int missed = _missedProbes.GetValueOrDefault(target) + 1;
            _missedProbes[target] = missed;
            LogProbeMissed(_logger, Self, target, missed);
            if (missed >= _options.NumMissedProbesLimit)
                await SuspectAsync(target, "missed probes", stop).ConfigureAwait(false);
        }
    }

    private async Task<bool> ProbeOnceAsync(SiloAddress target, CancellationToken stop)
    {
        using var timeout = new CancellationTokenSource(_options.ProbeTimeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, stop);
        try
        {
            await _probe.ProbeAsync(target, linked.Token).WaitAsync(_options.ProbeTimeout, _time, stop).ConfigureAwait(false);
            return true;
        }
        catch (Exception) when (!stop.IsCancellationRequested)
        {
            return false;
        }
    }

    /// <summary>The silos this one probes: its next <see cref="MembershipOptions.NumProbedSilos"/> successors on the ring of live silos.</summary>
    internal List<SiloAddress> MonitoredSilos(MembershipSnapshot snapshot)
    {
        var ring = new List<SiloAddress>();
        foreach (var e in snapshot.Entries.Values)
            if (e.Status is SiloStatus.Active or SiloStatus.ShuttingDown && !e.Silo.Equals(Self))
                ring.Add(e.Silo);
        ring.Add(Self);
        ring.Sort();
        int me = ring.IndexOf(Self);
        var targets = new List<SiloAddress>();
        for (int i = 1; i < ring.Count && targets.Count < _options.NumProbedSilos; i++)
            targets.Add(ring[(me + i) % ring.Count]);
        return targets;
    }

    private async Task CheckStaleHeartbeatsAsync(CancellationToken stop)
    {
        var now = _time.GetUtcNow();
        var limit = _options.IAmAlivePublishPeriod * _options.NumMissedTableIAmAliveLimit;
        foreach (var e in Current.Entries.Values)
        {
            if (e.Silo.Equals(Self) || !e.Status.IsAlive() || now - e.IAmAliveTime <= limit)
                continue;
            await SuspectAsync(e.Silo, "stale heartbeat", stop, declareNow: true).ConfigureAwait(false);
        }
        if (_options.DefunctSiloExpiration > TimeSpan.Zero)
            await _table.CleanupDefunctEntriesAsync(now - _options.DefunctSiloExpiration, stop).ConfigureAwait(false);
    }

    /// <summary>Adds this silo's vote against <paramref name="target"/>; declares it Dead once enough fresh votes agree.</summary>
    private async Task SuspectAsync(SiloAddress target, string reason, CancellationToken stop, bool declareNow = false)
    {
        while (!stop.IsCancellationRequested)
        {
            var data = await _table.ReadAllAsync(stop).ConfigureAwait(false);
            Apply(data);
            if (IsDeclaredDead)
                return;
            var row = data.Find(target);
            if (row is null || row.Entry.Status == SiloStatus.Dead)
                return;
            int active = data.Rows.Count(r => r.Entry.Status == SiloStatus.Active);
            var decision = _policy.Vote(row.Entry, Self, _time.GetUtcNow(), active);
            bool kill = declareNow || decision.DeclareDead;
            var entry = row.Entry with { Suspicions = decision.Votes, Status = kill ? SiloStatus.Dead : row.Entry.Status };
            if (await _table.UpdateRowAsync(entry, row.Etag, data.Version.Next(), stop).ConfigureAwait(false))
            {
                if (kill)
                    LogDeclaredDead(_logger, target, Self, $"{reason}, {decision.Votes.Count}/{decision.RequiredVotes} votes");
                else
                    LogVoted(_logger, Self, target, decision.Votes.Count, decision.RequiredVotes);
                await RefreshAsync(stop).ConfigureAwait(false);
                return;
            }
        }
    }

    private static async Task<bool> WaitTickAsync(PeriodicTimer timer, CancellationToken stop)
    {
        try
        {
            return await timer.WaitForNextTickAsync(stop).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private async Task StopLoopsAsync()
    {
        try
        {
            _stop.Cancel();
        }
        catch (ObjectDisposedException)
        {
            return;
        }
        _changes.Writer.TryComplete();
        try
        {
            await Task.WhenAll(_loops).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // A loop was stopped in the middle of a table call or probe: that is how it stops.
        }
    }
}
