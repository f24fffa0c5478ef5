using MigrationFabric.Memory.Mmu;

namespace MigrationFabric.Migration.Tests.MultiHost;

/// <summary>Ends a workload the test stopped: a vCPU that was waiting in a fault (a remote page-in) when the stop came ends with that fault cancelled, which is the stop, not a failure.</summary>
public static class WorkloadStop
{
    public static async Task WaitAsync(Task running, CancellationTokenSource stop)
    {
        try { await running; }
        catch (PageFaultException e) when (stop.IsCancellationRequested && e.InnerException is OperationCanceledException) { }
    }
}
