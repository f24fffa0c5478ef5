using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace MigrationFabric.Memory.Swap;

/// <summary>Turns O_DIRECT on for an open file (Linux): .NET's FileOptions have no such flag, fcntl(F_SETFL) can set it.</summary>
internal static partial class DirectIo
{
    private const int GetFlags = 3, SetFlags = 4;

    /// <summary>Sets O_DIRECT on <paramref name="handle"/>; throws <see cref="IOException"/> with the errno when the system or file system refuses.</summary>
    public static void Enable(SafeFileHandle handle)
    {
        if (!OperatingSystem.IsLinux()) throw new IOException("direct I/O (O_DIRECT) is available on Linux only.");
        var oDirect = RuntimeInformation.ProcessArchitecture is Architecture.Arm64 or Architecture.Arm ? 0x10000 : 0x4000;
        var fd = (int)handle.DangerousGetHandle();
        var flags = Fcntl(fd, GetFlags, 0);
        if (flags < 0 || Fcntl(fd, SetFlags, flags | oDirect) < 0)
            throw new IOException($"the file system refuses direct I/O (O_DIRECT): errno {Marshal.GetLastPInvokeError()}.");
    }

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int Fcntl(int fd, int command, int argument);
}
