namespace MigrationFabric.Migration.Tests.Support;

/// <summary>Runs a test's guest vCPU work on a thread of its own, as a real vCPU runs.</summary>
/// <remarks>
/// A vCPU that faults on a remote page blocks until the pager's RPC answers; on a thread-pool thread it holds a thread that RPC's
/// continuations need. In a fresh-clone CI run, with every test class starting at once, a surviving sub-host's page-in passed
/// its 5 s deadline that way and that sub-host was declared lost as well.
/// </remarks>
public static class VcpuThread
{
    /// <summary>Starts <paramref name="body"/> on a dedicated thread (named as MigrationFabric.Memory.Tests' twin, which this project does not reference).</summary>
    public static Task Start(Action body) =>
        Task.Factory.StartNew(body, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
}
