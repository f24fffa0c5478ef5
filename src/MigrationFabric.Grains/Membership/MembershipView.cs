using System.Threading.Channels;

namespace MigrationFabric.Grains.Membership;

/// <summary>The membership snapshot one silo holds: moves only to newer versions, wakes waiters, queues changes in order.</summary>
internal sealed class MembershipView
{
    private readonly object _gate = new();
    private readonly List<(Func<MembershipSnapshot, bool> Predicate, TaskCompletionSource<MembershipSnapshot> Done)> _waiters = [];
    private readonly Channel<MembershipSnapshot> _changes = Channel.CreateUnbounded<MembershipSnapshot>(new UnboundedChannelOptions { SingleReader = true });
    private MembershipSnapshot _current = MembershipSnapshot.Empty;
    private Exception? _closed;

    public MembershipSnapshot Current => Volatile.Read(ref _current);

    /// <summary>Adopts <paramref name="data"/> if it is newer than the current snapshot; returns the new snapshot or null.</summary>
    public MembershipSnapshot? TryAdvance(MembershipTableData data)
    {
        lock (_gate)
        {
            if (data.Version.Version <= _current.Version)
                return null;
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
            return snapshot;
        }
    }

    public Task<MembershipSnapshot> WaitForAsync(Func<MembershipSnapshot, bool> predicate, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(predicate);
        var done = new TaskCompletionSource<MembershipSnapshot>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            if (predicate(_current))
                return Task.FromResult(_current);
            if (_closed is not null)
                return Task.FromException<MembershipSnapshot>(_closed);
            _waiters.Add((predicate, done));
        }
        return cancellationToken.CanBeCanceled ? WaitCancellableAsync(done, cancellationToken) : done.Task;
    }

    /// <summary>Calls <paramref name="raise"/> for each adopted snapshot, in version order, until <see cref="CompleteChanges"/>.</summary>
    public async Task DispatchChangesAsync(Action<MembershipSnapshot> raise)
    {
        await foreach (var snapshot in _changes.Reader.ReadAllAsync().ConfigureAwait(false))
            raise(snapshot);
    }

    /// <summary>Ends change dispatch (later snapshots still update <see cref="Current"/> and waiters).</summary>
    public void CompleteChanges() => _changes.Writer.TryComplete();

    /// <summary>Fails every pending and future unsatisfied wait with <paramref name="reason"/>.</summary>
    public void Close(Exception reason)
    {
        lock (_gate)
        {
            _closed = reason;
            foreach (var w in _waiters)
                w.Done.TrySetException(reason);
            _waiters.Clear();
        }
        CompleteChanges();
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
}
