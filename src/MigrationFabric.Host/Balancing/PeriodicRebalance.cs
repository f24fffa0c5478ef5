namespace MigrationFabric.Host.Balancing;

using MigrationFabric.Contracts.V1;
using MigrationFabric.Host.Hypervisor;

/// <summary>VMMB's periodic re-balance: applies <see cref="HostMemoryRebalance"/> to one host every interval until disposed.</summary>
public sealed class PeriodicRebalance : IAsyncDisposable
{
    private readonly HostMemoryRebalance _rebalance;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private RebalanceMemoryResponse? _last;
    private Exception? _lastError;
    private long _rounds;

    /// <summary>Starts rebalancing <paramref name="hypervisor"/> every <paramref name="interval"/>.</summary>
    public PeriodicRebalance(LocalHypervisor hypervisor, TimeSpan interval, HostRebalanceOptions? options = null, TimeProvider? time = null)
    {
        if (interval <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(interval), interval, "the rebalance interval must be positive.");
        _rebalance = new HostMemoryRebalance(hypervisor, options);
        _loop = RunAsync(interval, time ?? TimeProvider.System);
    }

    /// <summary>Rebalances done so far.</summary>
    public long Rounds => Interlocked.Read(ref _rounds);

    /// <summary>The last rebalance's result, or null before the first.</summary>
    public RebalanceMemoryResponse? Last => Volatile.Read(ref _last);

    /// <summary>Why the last rebalance failed (e.g. reservations above the budget), or null when it succeeded.</summary>
    public Exception? LastError => Volatile.Read(ref _lastError);

    private async Task RunAsync(TimeSpan interval, TimeProvider time)
    {
        using var timer = new PeriodicTimer(interval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false))
            {
                try
                {
                    Volatile.Write(ref _last, _rebalance.Rebalance(dryRun: false));
                    Volatile.Write(ref _lastError, null);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // A host whose reservations do not fit is a state to report, not a reason to stop balancing.
                    Volatile.Write(ref _lastError, e);
                }
                Interlocked.Increment(ref _rounds);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Stops the rebalancing.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_stop.IsCancellationRequested) return;
        await _stop.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        _stop.Dispose();
    }
}
