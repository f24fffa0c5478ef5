using System.Runtime.InteropServices;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Pages;

namespace MigrationFabric.Migration.DataPlane;

/// <summary>Maps never-touched destination pages in one system call per run of pages (madvise MADV_POPULATE_WRITE) before a batch is copied into them.</summary>
/// <remarks>
/// Copying into fresh anonymous memory costs a kernel page fault per 4 KiB page, and the profile of a 1 GiB receive showed
/// these faults as the largest single item of the destination's CPU (more than the copy and the checksum together).
/// Populating a run is the same allocation without a trap per page. Best effort: where the call is refused (no such
/// advice before Linux 5.14, memory that is not an mmap) the pages simply fault on first write as before.
/// </remarks>
internal sealed partial class PagePrefault
{
    private const int MadvPopulateWrite = 23;
    private int _unsupported = OperatingSystem.IsLinux() ? 0 : 1;

    /// <summary>Populates pages [<paramref name="first"/>, first + <paramref name="count"/>) of <paramref name="memory"/>.</summary>
    public unsafe void Populate(GuestMemory memory, long first, int count)
    {
        if (Volatile.Read(ref _unsupported) != 0) return;
        var span = memory.GetPageBytes(first);
        fixed (byte* start = span)
        {
            if (Madvise((nint)start, (nuint)count * Page.Size, MadvPopulateWrite) != 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                // EINVAL: the kernel does not know the advice or the memory is not an anonymous mapping; ENOMEM is left to the copy's own fault to report.
                if (errno is 22 or 38) Volatile.Write(ref _unsupported, 1);
            }
        }
    }

    [LibraryImport("libc", EntryPoint = "madvise", SetLastError = true)]
    private static partial int Madvise(nint addr, nuint length, int advice);
}
