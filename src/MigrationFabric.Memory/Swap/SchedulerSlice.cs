using System.Runtime.InteropServices;

namespace MigrationFabric.Memory.Swap;

/// <summary>Asks Linux's fair scheduler (EEVDF, 6.12 and later) for a custom time slice for the calling thread (sched_setattr's sched_runtime).</summary>
/// <remarks>
/// A thread that sleeps on short I/O and must run as soon as it is woken asks for a short slice: the kernel then lets it
/// preempt a busy thread at wake-up (PREEMPT_SHORT) instead of waiting for that thread's slice to end. Older kernels accept
/// the call and ignore the slice; <c>/proc/thread-self/sched</c>'s <c>se.slice</c> shows what the thread got.
/// </remarks>
internal static partial class SchedulerSlice
{
    /// <summary>The slice bounds the kernel accepts for a fair thread (0.1 ms to 100 ms).</summary>
    internal static readonly TimeSpan Shortest = TimeSpan.FromTicks(1000), Longest = TimeSpan.FromMilliseconds(100);

    /// <summary>Sets the calling thread's slice; returns null on success, else why not (not Linux, an unknown architecture, or the kernel's errno).</summary>
    public static string? TrySetForCurrentThread(TimeSpan slice)
    {
        if (slice < Shortest || slice > Longest)
            throw new ArgumentOutOfRangeException(nameof(slice), slice, $"a scheduler slice must be within {Shortest.TotalMilliseconds} to {Longest.TotalMilliseconds} ms.");
        if (!OperatingSystem.IsLinux()) return "custom scheduler slices are Linux's";
        long number = RuntimeInformation.ProcessArchitecture switch
        {
            Architecture.X64 => 314,
            Architecture.Arm64 => 274,
            _ => -1,
        };
        if (number < 0) return $"sched_setattr's system call number is not known for {RuntimeInformation.ProcessArchitecture}";
        // struct sched_attr as of Linux 4.13 (SCHED_ATTR_SIZE_VER1, 56 bytes): policy SCHED_OTHER, nice 0, runtime = the slice.
        Span<byte> attr = stackalloc byte[56];
        attr.Clear();
        BitConverter.TryWriteBytes(attr, 56u);
        BitConverter.TryWriteBytes(attr[24..], (ulong)(slice.Ticks * 100));
        unsafe
        {
            fixed (byte* p = attr)
            {
                if (Syscall(number, 0, (nint)p, 0) == 0) return null;
            }
        }
        int errno = Marshal.GetLastPInvokeError();
        return $"sched_setattr of a {slice.TotalMilliseconds} ms slice failed: errno {errno} ({Marshal.GetPInvokeErrorMessage(errno)})";
    }

    /// <summary>The calling thread's slice as the kernel reports it (se.slice in /proc/thread-self/sched), or null where it reports none.</summary>
    public static TimeSpan? OfCurrentThread() => Read("/proc/thread-self/sched");

    /// <summary>The slice in a thread's sched file (/proc/PID/task/TID/sched), or null where it has none.</summary>
    /// <exception cref="InvalidDataException">se.slice is not a number of nanoseconds.</exception>
    internal static TimeSpan? Read(string path)
    {
        if (!File.Exists(path)) return null;
        foreach (var line in File.ReadLines(path))
        {
            if (!line.StartsWith("se.slice", StringComparison.Ordinal)) continue;
            var value = line[(line.IndexOf(':') + 1)..].Trim();
            return long.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var ns)
                ? TimeSpan.FromTicks(ns / 100)
                : throw new InvalidDataException($"{path}: se.slice is not a number of nanoseconds: '{line}'.");
        }
        return null;
    }

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall(long number, long pid, nint attr, long flags);
}
