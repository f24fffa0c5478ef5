namespace MigrationFabric.Memory.Tests.Support;

/// <summary>Runs an action on a dedicated thread (as a vCPU) and exposes its completion as a task.</summary>
internal static class VcpuThread
{
    public static Task Start(Action body)
    {
        var tcs = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var t = new Thread(() =>
        {
            try { body(); tcs.SetResult(); }
            catch (Exception e) { tcs.SetException(e); }
        }) { IsBackground = true };
        t.Start();
        return tcs.Task;
    }

    public static readonly TimeSpan Generous = TimeSpan.FromSeconds(30);
}
