namespace MigrationFabric.Cli.Rendering;

using MigrationFabric.Contracts.V1;
using Spectre.Console;

/// <summary>The table `mf vm list` prints, with a faulted guest or lost memory said in full below it.</summary>
public static class VmTable
{
    /// <summary>Writes <paramref name="vms"/> to <paramref name="console"/>.</summary>
    public static void Write(IAnsiConsole console, IReadOnlyCollection<Vm> vms)
    {
        ArgumentNullException.ThrowIfNull(console);
        ArgumentNullException.ThrowIfNull(vms);
        var table = new Table().AddColumns("VM", "host", "memory", "reservation", "weight", "resident", "swapped", "remote", "workload", "state", "migration");
        foreach (var v in vms)
        {
            // Remote: the split sub-hosts holding part of it, with how much each; a lost part is said loudly.
            string remote = v.RemoteShares.Count == 0 ? "-" : string.Join(", ", v.RemoteShares.Select(r => $"{r.Host} {Units.Bytes(r.Bytes)}"));
            if (v.MemoryError.Length > 0) remote += $" (LOST {Units.Bytes(v.LostBytes)})";
            table.AddRow(Esc(v.Name), Esc(v.Host), Units.Bytes(v.MemoryBytes),
                v.ReservationBytes == 0 ? "-" : Units.Bytes(v.ReservationBytes),
                // 0 only from an agent older than the weight field; the API gives 1 when it was not set.
                v.Weight == 0 ? "-" : v.Weight.ToString(System.Globalization.CultureInfo.InvariantCulture),
                Units.Bytes(v.ResidentBytes), v.SwappedBytes == 0 ? "-" : Units.Bytes(v.SwappedBytes),
                Esc(remote), Esc(WorkloadText.Name(v.Workload?.Kind ?? WorkloadKind.Unspecified)), State(v), Esc(v.MigrationId.Length == 0 ? "-" : v.MigrationId));
        }
        console.Write(table);
        // A stopped guest or lost memory is said in full, not only as a state in the table; upper case so it stands out without colour too.
        foreach (var v in vms)
        {
            if (v.State == VmState.Faulted || v.VcpuError.Length > 0)
                console.MarkupLine($"[red]FAULTED: VM {Esc(v.Name)} on {Esc(v.Host)}: its vCPUs stopped: {Esc(v.VcpuError.Length > 0 ? v.VcpuError : "(no error given)")}[/]");
            if (v.MemoryError.Length > 0) console.MarkupLine($"[red]MEMORY LOST: VM {Esc(v.Name)}: {Esc(v.MemoryError)}[/]");
        }
    }

    /// <summary>A VM's state as the table shows it: lower case, except FAULTED (in red on a terminal).</summary>
    public static string State(Vm v) => v.State switch
    {
        VmState.Running => "running",
        VmState.Paused => "paused",
        VmState.Migrating => "migrating",
        VmState.Stopped => "stopped",
        VmState.Faulted => "[bold red]FAULTED[/]",
        _ => "?",
    };

    private static string Esc(string s) => Markup.Escape(s);
}
