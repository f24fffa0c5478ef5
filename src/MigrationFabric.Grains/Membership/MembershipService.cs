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
    private readonly MembershipOptions _options;
    private readonly SuspicionPolicy _policy;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly string _siloName;
    private readonly CancellationTokenSource _stop = new();
    private readonly MembershipView _view = new();
    private readonly ClusterHealthMonitor _monitor;
    private readonly List<Task> _loops = [];
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
        _monitor = new ClusterHealthMonitor(self, probe, _options, time ?? TimeProvider.System);
        Self = self;
        _table = table;
        _time = time ?? TimeProvider.System;
        _logger = logger ?? (ILogger)NullLogger.Instance;
        _siloName = siloName ?? self.Endpoint;
    }

    /// <inheritdoc />
    public SiloAddress Self { get; }

    /// <inheritdoc />
    public MembershipSnapshot Current => _view.Current;

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
            // Real-time jitter, not protocol time: it only spreads out silos that keep colliding on insert.
            await Task.Delay(TimeSpan.FromMilliseconds(Random.Shared.Next(1, 20)), cancellationToken).ConfigureAwait(false);
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
        _view.Close(new ObjectDisposedException(nameof(MembershipService), $"Membership of silo {Self} stopped."));
        _stop.Dispose();
    }

    /// <inheritdoc />
    public Task RefreshAsync(CancellationToken cancellationToken) => ReadAndApplyAsync(cancellationToken);

    private async Task<MembershipTableData> ReadAndApplyAsync(CancellationToken cancellationToken)
    {
        var data = await _table.ReadAllAsync(cancellationToken).ConfigureAwait(false);
        Apply(data);
        return data;
    }

    /// <inheritdoc />
    public Task<MembershipSnapshot> WaitForAsync(Func<MembershipSnapshot, bool> predicate, CancellationToken cancellationToken) =>
        _view.WaitForAsync(predicate, cancellationToken);

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
        var snapshot = _view.TryAdvance(data);
        if (snapshot is null || Volatile.Read(ref _started) == 0 || Volatile.Read(ref _leaving) != 0
            || snapshot.GetStatus(Self) != SiloStatus.Dead || Interlocked.Exchange(ref _selfDead, 1) != 0)
            return;
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

    private Task DispatchChangesAsync() => _view.DispatchChangesAsync(snapshot =>
    {
        try
        {
            Changed?.Invoke(snapshot);
        }
        catch (Exception e)
        {
            LogHandlerFailed(_logger, e, Self);
        }
    });

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
                    var data = await ReadAndApplyAsync(stop).ConfigureAwait(false);
                    await CheckStaleHeartbeatsAsync(data, stop).ConfigureAwait(false);
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
        foreach (var (target, missed) in await _monitor.ProbeRoundAsync(Current, stop).ConfigureAwait(false))
        {
            LogProbeMissed(_logger, Self, target, missed);
            if (missed >= _options.NumMissedProbesLimit)
                await SuspectAsync(target, "missed probes", stop).ConfigureAwait(false);
        }
    }

    /// <summary>Declares dead every live silo whose heartbeat in <paramref name="data"/> (a fresh read) is too old.</summary>
    /// <remarks>Snapshots move only with the version, which heartbeats do not bump, so this must look at the read itself.</remarks>
    private async Task CheckStaleHeartbeatsAsync(MembershipTableData data, CancellationToken stop)
    {
        foreach (var row in data.Rows)
        {
            if (!row.Entry.Silo.Equals(Self) && IsStale(row.Entry))
                await SuspectAsync(row.Entry.Silo, "stale heartbeat", stop, declareIf: IsStale).ConfigureAwait(false);
        }
        if (_options.DefunctSiloExpiration > TimeSpan.Zero)
            await _table.CleanupDefunctEntriesAsync(_time.GetUtcNow() - _options.DefunctSiloExpiration, stop).ConfigureAwait(false);
    }

    private bool IsStale(MembershipEntry entry) =>
        entry.Status.IsAlive()
        && _time.GetUtcNow() - entry.IAmAliveTime > _options.IAmAlivePublishPeriod * _options.NumMissedTableIAmAliveLimit;

    /// <summary>Adds this silo's vote against <paramref name="target"/>; declares it Dead once enough fresh votes agree.</summary>
    /// <remarks>With <paramref name="declareIf"/>, the vote is cast only if the fresh row still satisfies it, and then declares at once.</remarks>
    private async Task SuspectAsync(SiloAddress target, string reason, CancellationToken stop, Func<MembershipEntry, bool>? declareIf = null)
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
            if (declareIf is not null && !declareIf(row.Entry))
                return;
            int active = data.Rows.Count(r => r.Entry.Status == SiloStatus.Active);
            var decision = _policy.Vote(row.Entry, Self, _time.GetUtcNow(), active);
            bool kill = declareIf is not null || decision.DeclareDead;
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
        _view.CompleteChanges();
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
