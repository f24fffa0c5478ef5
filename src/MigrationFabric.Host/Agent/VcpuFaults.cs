namespace MigrationFabric.Host.Agent;

using System.Text;
using MigrationFabric.Host.Hypervisor;

/// <summary>Makes every vCPU stop of a running VM loud: a run that faults (whatever the exception) is described in one line and handed to a recorder (the VM's grain).</summary>
public static class VcpuFaults
{
    /// <summary>Longest description kept (the chain of causes of a remote-paging fault can run long).</summary>
    public const int MaxLength = 2000;

    /// <summary>Why <paramref name="run"/> stopped, or "" while it runs or when it ended without error (stopped on purpose).</summary>
    public static string Describe(Task run)
    {
        ArgumentNullException.ThrowIfNull(run);
        return run.IsFaulted ? Describe(run.Exception) : "";
    }

    /// <summary>The causes of <paramref name="error"/> outermost first, each as "Type: message", a cause whose message its wrapper already quotes left out.</summary>
    public static string Describe(Exception error)
    {
        ArgumentNullException.ThrowIfNull(error);
        var text = new StringBuilder();
        string previous = "";
        for (Exception? e = error; e is not null; e = e.InnerException)
        {
            // The run's AggregateException only wraps; a cause already quoted by its wrapper adds nothing.
            if (e is AggregateException { InnerExceptions.Count: 1 } || previous.Contains(e.Message, StringComparison.Ordinal)) continue;
            if (text.Length > 0) text.Append(" <- ");
            text.Append(e.GetType().Name).Append(": ").Append(e.Message);
            previous = e.Message;
        }
        return text.Length <= MaxLength ? text.ToString() : string.Concat(text.ToString(0, MaxLength - 3), "...");
    }

    /// <summary>When <paramref name="vm"/>'s current run faults, calls <paramref name="record"/> with <see cref="Describe(Task)"/>; ends after that, or when the run ends without error.</summary>
    /// <remarks>Call right after the VM's vCPUs started (LocalVm.Start or Resume). A recorder that fails is not retried here: pass one that retries.</remarks>
    public static async Task WatchAsync(LocalVm vm, Func<string, Task> record)
    {
        ArgumentNullException.ThrowIfNull(vm);
        ArgumentNullException.ThrowIfNull(record);
        var run = vm.Run;
        try
        {
            await run.ConfigureAwait(false);
        }
        catch (Exception) when (run.IsFaulted)
        {
            await record(Describe(run)).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Stopped on purpose (the VM was removed): nothing to report.
        }
    }
}
