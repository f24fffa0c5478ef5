namespace MigrationFabric.Migration.DataPlane;

/// <summary>Wakes every waiter each time something changed; a waiter takes <see cref="Next"/> before checking its condition, then awaits it.</summary>
internal sealed class AsyncSignal
{
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task Next => Volatile.Read(ref _changed).Task;

    public void Set() => Interlocked.Exchange(ref _changed, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
}
