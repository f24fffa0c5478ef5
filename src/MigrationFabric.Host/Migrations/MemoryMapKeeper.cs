namespace MigrationFabric.Host.Migrations;

using MigrationFabric.Migration.MultiHost;

/// <summary>Persists a split VM's memory map as it changes, coalesced: the newest version is written at most every <see cref="Interval"/>, never an older one after a newer.</summary>
/// <remarks>
/// The remote pager reports a change after every page-out batch; a grain-storage write per batch would put storage on
/// the paging path, so the keeper writes the newest map in the background. The persisted map may therefore lag the
/// live one by up to the interval (plus one write): after losing the main host's agent, pages moved in that window
/// are found at their older place.
/// </remarks>
public sealed class MemoryMapKeeper : IDisposable
{
    /// <summary>Longest time between a change and its write. 200 ms.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(200);

    private readonly Func<byte[], Task> _save;
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _changed = new(0, 1);
    private MemoryMap? _pending;
    private long _savedVersion = -1;

    /// <summary>A keeper writing through <paramref name="save"/>.</summary>
    public MemoryMapKeeper(Func<byte[], Task> save)
    {
        _save = save;
        _ = Task.Run(LoopAsync);
    }

    /// <summary>Versions written so far (the newest map's version once it is persisted).</summary>
    public long SavedVersion => Interlocked.Read(ref _savedVersion);

    /// <summary>Notes a changed map (cheap: the write happens later).</summary>
    public void Changed(MemoryMap map)
    {
        Volatile.Write(ref _pending, map);
        try { if (_changed.CurrentCount == 0) _changed.Release(); }
        catch (SemaphoreFullException) { }
        catch (ObjectDisposedException) { }
    }

    private async Task LoopAsync()
    {
        var ct = _stop.Token;
        try
        {
            while (!ct.IsCancellationRequested)
            {
                await _changed.WaitAsync(ct).ConfigureAwait(false);
                var map = Volatile.Read(ref _pending);
                if (map is null) continue;
                long version = map.Version;
                if (version > SavedVersion || SavedVersion < 0)
                {
                    try
                    {
                        await _save(map.Serialize()).ConfigureAwait(false);
                        Interlocked.Exchange(ref _savedVersion, version);
                    }
                    catch (Exception) when (!ct.IsCancellationRequested)
                    {
                        // The VM's grain is unreachable for now; the next change (or this one, re-noted) tries again.
                        Changed(map);
                    }
                }
                await Task.Delay(Interval, ct).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <inheritdoc />
    public void Dispose() => _stop.Cancel();
}
