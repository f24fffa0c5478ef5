using System.Runtime.InteropServices;

namespace MigrationFabric.Memory.Guest;

/// <summary>An anonymous private mapping outside the GC heap whose pages can really be handed back to the OS.</summary>
/// <remarks>
/// On Linux this is mmap(MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE): untouched pages hold no RAM, and
/// madvise(MADV_DONTNEED) drops a page's RAM and makes it read back as zeroes, so a resident-page budget is
/// real RSS. Elsewhere it falls back to zeroed native memory, where discarding only zeroes the bytes.
/// </remarks>
internal sealed unsafe partial class NativeMapping : IDisposable
{
    internal const int ProtRead = 0x1, ProtWrite = 0x2;
    internal const int MapPrivate = 0x02, MapAnonymous = 0x20, MapNoReserve = 0x4000;
    internal const int MadvDontNeed = 4, MadvHugePage = 14, MadvNoHugePage = 15, MadvPopulateWrite = 23;
    internal const int MremapMayMove = 1, MremapFixed = 2;
    private const int Enomem = 12, Einval = 22, Enosys = 38;
    internal static readonly nint MapFailed = -1;

    private readonly bool _mmapped;
    private byte* _base;

    public NativeMapping(long length, bool hugePages)
    {
        Length = length;
        if (OperatingSystem.IsLinux())
        {
            var p = Mmap(0, (nuint)length, ProtRead | ProtWrite, MapPrivate | MapAnonymous | MapNoReserve, -1, 0);
            if (p == MapFailed)
            {
                int errno = Marshal.GetLastPInvokeError();
                throw new OutOfMemoryException(
                    $"mmap of {length} bytes of guest memory failed: errno {errno} ({Marshal.GetPInvokeErrorMessage(errno)}).");
            }
            _base = (byte*)p;
            _mmapped = true;
            // Advice is best effort: a kernel without THP rejects it, which changes nothing we rely on.
            _ = Madvise(p, (nuint)length, hugePages ? MadvHugePage : MadvNoHugePage);
        }
        else
        {
            try
            {
                _base = (byte*)NativeMemory.AlignedAlloc((nuint)length, 4096);
            }
            catch (OutOfMemoryException e)
            {
                throw new OutOfMemoryException($"allocation of {length} bytes of guest memory failed.", e);
            }
            NativeMemory.Clear(_base, (nuint)length);
        }
    }

    public long Length { get; }

    public byte* Base
    {
        get
        {
            ObjectDisposedException.ThrowIf(_base == null, this);
            return _base;
        }
    }

    /// <summary>Gives the RAM behind [offset, offset + length) back; the range reads as zeroes afterwards.</summary>
    public void Discard(long offset, long length)
    {
        var b = Base;
        if (_mmapped)
        {
            if (Madvise((nint)(b + offset), (nuint)length, MadvDontNeed) != 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                throw new InvalidOperationException(
                    $"madvise(MADV_DONTNEED) of {length} bytes at offset {offset} failed: errno {errno} ({Marshal.GetPInvokeErrorMessage(errno)}).");
            }
        }
        else
        {
            NativeMemory.Clear(b + offset, (nuint)length);
        }
    }

    /// <summary>Maps RAM behind [offset, offset + length) without changing its bytes (madvise MADV_POPULATE_WRITE); false where the kernel or platform cannot.</summary>
    public bool Populate(long offset, long length)
    {
        var b = Base;
        if (!_mmapped) return false;
        if (Madvise((nint)(b + offset), (nuint)length, MadvPopulateWrite) == 0) return true;
        return PopulateRefusal(Marshal.GetLastPInvokeError(), offset, length) is { } refusal ? throw refusal : false;
    }

    /// <summary>The error for a failed MADV_POPULATE_WRITE, or null where the failure only means "cannot populate" and first writes fault as usual.</summary>
    /// <remarks>EINVAL is what a kernel before 5.14 returns for the unknown advice (and what any kernel returns for a range it cannot populate,
    /// such as one made read-only): either way nothing was populated and nothing is lost.</remarks>
    internal static Exception? PopulateRefusal(int errno, long offset, long length)
    {
        if (errno is Einval or Enosys) return null;
        string message = $"madvise(MADV_POPULATE_WRITE) of {length} bytes at offset {offset} failed: errno {errno} ({Marshal.GetPInvokeErrorMessage(errno)}).";
        return errno == Enomem ? new InsufficientMemoryException(message) : new InvalidOperationException(message);
    }

    public void Dispose()
    {
        var b = _base;
        if (b == null) return;
        _base = null;
        if (_mmapped) _ = Munmap((nint)b, (nuint)Length);
        else NativeMemory.AlignedFree(b);
    }

    /// <summary>Maps <paramref name="length"/> bytes of private anonymous memory holding no RAM yet, with the guest memory's huge-page advice; <paramref name="what"/> names it in the error.</summary>
    /// <exception cref="InsufficientMemoryException">The address space could not be mapped.</exception>
    internal static nint MapFresh(nuint length, bool transparentHugePages, string what)
    {
        var p = Mmap(0, length, ProtRead | ProtWrite, MapPrivate | MapAnonymous | MapNoReserve, -1, 0);
        if (p == MapFailed)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw new InsufficientMemoryException($"mmap of {what} failed: errno {errno} ({Marshal.GetPInvokeErrorMessage(errno)}).");
        }
        _ = Madvise(p, length, transparentHugePages ? MadvHugePage : MadvNoHugePage);
        return p;
    }

    /// <summary>Moves the frames of [from, from + length) to <paramref name="to"/> (mremap, MREMAP_MAYMOVE | MREMAP_FIXED and <paramref name="extraFlags"/>); null on success, else the refusal with its errno.</summary>
    internal static string? Remap(nint from, nuint length, nint to, int extraFlags)
    {
        if (Mremap(from, length, length, MremapMayMove | MremapFixed | extraFlags, to) != MapFailed) return null;
        int errno = Marshal.GetLastPInvokeError();
        return $"mremap of {length >> 12} frames failed: errno {errno} ({Marshal.GetPInvokeErrorMessage(errno)})";
    }

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    internal static partial nint Mmap(nint addr, nuint length, int prot, int flags, int fd, nint offset);

    [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
    internal static partial int Munmap(nint addr, nuint length);

    [LibraryImport("libc", EntryPoint = "madvise", SetLastError = true)]
    internal static partial int Madvise(nint addr, nuint length, int advice);

    // mremap is variadic in C; its fifth argument (the new address) is passed as on any x86-64/arm64 Linux call.
    [LibraryImport("libc", EntryPoint = "mremap", SetLastError = true)]
    internal static partial nint Mremap(nint oldAddress, nuint oldSize, nuint newSize, int flags, nint newAddress);
}
