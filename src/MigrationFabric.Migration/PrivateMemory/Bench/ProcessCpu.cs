using System.Globalization;

namespace MigrationFabric.Migration.PrivateMemory.Bench;

/// <summary>CPU time this process has used (user + system, from /proc), split into the emulated guest's vCPU threads and the rest: the fabric's source, destination and links.</summary>
/// <remarks>
/// The bench runs the source, the destination and the guest in one process on shared cores, so the wall time of an
/// active VM's migration depends on how much CPU each kind of destination takes beside the guest's busy vCPU. A vCPU
/// thread is one named <c>vcpu-</c> (see <c>Workload</c>); its time is read while it is alive, so a window must end
/// before the source's vCPUs exit (the bench reads at the resume, when they are paused).
/// </remarks>
/// <param name="Fabric">Every thread but the vCPUs, including threads that have exited.</param>
/// <param name="Vcpus">The live vCPU threads.</param>
/// <param name="SwapWriters">Of <paramref name="Fabric"/>, the live private-memory placement writer threads (named <c>mf-pvm-writer-</c>): the CPU a VMemDirect destination spends writing pages to swap.</param>
public readonly record struct ProcessCpu(TimeSpan Fabric, TimeSpan Vcpus, TimeSpan SwapWriters = default)
{
    /// <summary>Clock ticks per second of /proc's times (USER_HZ, 100 on every Linux build that .NET runs on).</summary>
    private const double TicksPerSecond = 100;

    /// <summary>The CPU used from <paramref name="earlier"/> to this reading.</summary>
    public ProcessCpu Since(ProcessCpu earlier) => new(Fabric - earlier.Fabric, Vcpus - earlier.Vcpus, SwapWriters - earlier.SwapWriters);

    /// <summary>Reads this process's CPU use now; null where /proc is not there (not Linux).</summary>
    /// <exception cref="InvalidDataException">/proc/self/stat is not in the format proc(5) gives.</exception>
    public static ProcessCpu? Read() => Read("/proc/self");

    /// <summary>Reads the CPU use of the process whose proc directory is <paramref name="procDirectory"/> (tests pass a copy).</summary>
    /// <exception cref="InvalidDataException">A stat file is not in the format proc(5) gives.</exception>
    internal static ProcessCpu? Read(string procDirectory)
    {
        var stat = Path.Combine(procDirectory, "stat");
        if (!File.Exists(stat)) return null;
        var (_, total) = ParseStat(File.ReadAllText(stat), stat);
        long vcpus = 0, writers = 0;
        var tasks = Path.Combine(procDirectory, "task");
        if (Directory.Exists(tasks))
        {
            foreach (var task in Directory.EnumerateDirectories(tasks))
            {
                string text;
                try
                {
                    text = File.ReadAllText(Path.Combine(task, "stat"));
                }
                catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or IOException)
                {
                    // The thread exited between the listing and the read: its time is in the process's total.
                    continue;
                }
                var (name, ticks) = ParseStat(text, Path.Combine(task, "stat"));
                if (name.StartsWith("vcpu-", StringComparison.Ordinal)) vcpus += ticks;
                else if (name.StartsWith("mf-pvm-writer-", StringComparison.Ordinal)) writers += ticks;
            }
        }
        return new ProcessCpu(FromTicks(total - vcpus), FromTicks(vcpus), FromTicks(writers));
    }

    private static TimeSpan FromTicks(long ticks) => TimeSpan.FromSeconds(ticks / TicksPerSecond);

    // proc(5): "pid (comm) state ppid ..." with utime and stime the 14th and 15th fields; comm may hold spaces and parentheses, so it ends at the last ')'.
    internal static (string Name, long Ticks) ParseStat(string text, string path)
    {
        var open = text.IndexOf('(');
        var close = text.LastIndexOf(')');
        if (open < 0 || close < open) throw new InvalidDataException($"{path}: no '(comm)' field in '{Clip(text)}'.");
        var fields = text[(close + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        // fields[0] is the 3rd field (state), so utime (14th) is fields[11] and stime (15th) fields[12].
        if (fields.Length < 13
            || !long.TryParse(fields[11], NumberStyles.None, CultureInfo.InvariantCulture, out var user)
            || !long.TryParse(fields[12], NumberStyles.None, CultureInfo.InvariantCulture, out var system))
            throw new InvalidDataException($"{path}: utime and stime (fields 14 and 15) are not numbers in '{Clip(text)}'.");
        return (text[(open + 1)..close], user + system);
    }

    private static string Clip(string text) => text.Length <= 120 ? text.TrimEnd() : text[..120] + "...";
}
