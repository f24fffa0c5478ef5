using Microsoft.Win32.SafeHandles;
using MigrationFabric.Memory.Pages;

namespace MigrationFabric.Memory.Swap;

/// <summary>A VM's private swap file: a preallocated file of page-sized slots read and written at their offsets.</summary>
/// <remarks>
/// Slot s lives at byte s * 4096. The whole file is allocated up front (fallocate on Linux), so a
/// full disk is reported when the VM is placed, not in the middle of a page-out. Reads and writes
/// are positional (pread/pwrite through <see cref="RandomAccess"/>), so any number of threads may
/// use the file at once as long as they do not touch the same slot concurrently.
/// </remarks>
public sealed class PrivateSwapFile : IDisposable
{
    private readonly SafeFileHandle _handle;
    private readonly bool _deleteOnDispose;
    private int _disposed;

    private PrivateSwapFile(SafeFileHandle handle, string path, int slotCount, bool deleteOnDispose)
    {
        _handle = handle;
        Path = path;
        SlotCount = slotCount;
        _deleteOnDispose = deleteOnDispose;
    }

    /// <summary>Full path of the file.</summary>
    public string Path { get; }

    /// <summary>Number of page slots.</summary>
    public int SlotCount { get; }

    /// <summary>File length in bytes (slots times page size).</summary>
    public long Length => (long)SlotCount * Page.Size;

    /// <summary>Creates and preallocates a new swap file; throws <see cref="SwapFileException"/> naming the path when it cannot.</summary>
    /// <param name="path">File to create; it must not exist yet (an existing file is never overwritten).</param>
    /// <param name="slotCount">Number of page slots.</param>
    /// <param name="deleteOnDispose">Remove the file when this object is disposed (the normal case for a VM's scratch swap).</param>
    public static PrivateSwapFile Create(string path, int slotCount, bool deleteOnDispose = true)
    {
        if (string.IsNullOrWhiteSpace(path))
            throw new ArgumentException("The swap file path must not be empty.", nameof(path));
        if (slotCount <= 0)
            throw new ArgumentOutOfRangeException(nameof(slotCount), slotCount, "The swap file needs at least one slot.");

        var fullPath = System.IO.Path.GetFullPath(path);
        var length = (long)slotCount * Page.Size;
        SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(fullPath, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None,
                FileOptions.Asynchronous, preallocationSize: length);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException)
        {
            throw new SwapFileException(
                $"Cannot create private swap file '{fullPath}' of {slotCount} slots ({length} bytes): {e.Message}", e);
        }

        try
        {
            // Preallocation reserves blocks; the length makes every slot readable (unwritten slots read as zeroes).
            RandomAccess.SetLength(handle, length);
        }
        catch (IOException e)
        {
            handle.Dispose();
            TryDelete(fullPath);
            throw new SwapFileException(
                $"Cannot size private swap file '{fullPath}' to {length} bytes ({slotCount} slots): {e.Message}", e);
        }
        return new PrivateSwapFile(handle, fullPath, slotCount, deleteOnDispose);
    }

    /// <summary>Writes one page into <paramref name="slot"/>.</summary>
    public void Write(int slot, ReadOnlySpan<byte> page)
    {
        var offset = Check(slot, page.Length);
        RandomAccess.Write(_handle, page, offset);
    }

    /// <summary>Writes <paramref name="pageCount"/> consecutive pages from <paramref name="pages"/> into consecutive slots starting at <paramref name="firstSlot"/>.</summary>
    public void WriteRun(int firstSlot, int pageCount, ReadOnlySpan<byte> pages)
    {
        var offset = CheckRun(firstSlot, pageCount, pages.Length);
        RandomAccess.Write(_handle, pages, offset);
    }

    /// <summary>Reads the page in <paramref name="slot"/> into <paramref name="page"/>.</summary>
    public void Read(int slot, Span<byte> page)
    {
        var offset = Check(slot, page.Length);
        ReadFully(page, offset);
    }

    /// <summary>Reads <paramref name="pageCount"/> consecutive slots starting at <paramref name="firstSlot"/> into <paramref name="pages"/>.</summary>
    public void ReadRun(int firstSlot, int pageCount, Span<byte> pages)
    {
        var offset = CheckRun(firstSlot, pageCount, pages.Length);
        ReadFully(pages, offset);
    }

    /// <summary>Writes one page into <paramref name="slot"/> asynchronously.</summary>
    public ValueTask WriteAsync(int slot, ReadOnlyMemory<byte> page, CancellationToken cancellationToken = default)
    {
        var offset = Check(slot, page.Length);
        return RandomAccess.WriteAsync(_handle, page, offset, cancellationToken);
    }

    /// <summary>Reads the page in <paramref name="slot"/> into <paramref name="page"/> asynchronously.</summary>
    public async ValueTask ReadAsync(int slot, Memory<byte> page, CancellationToken cancellationToken = default)
    {
        var offset = Check(slot, page.Length);
        var done = 0;
        while (done < page.Length)
        {
            var n = await RandomAccess.ReadAsync(_handle, page[done..], offset + done, cancellationToken).ConfigureAwait(false);
            if (n == 0)
                throw new EndOfStreamException($"Swap file '{Path}' ended inside slot {slot}.");
            done += n;
        }
    }

    /// <summary>Closes the file and, unless created otherwise, deletes it.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        _handle.Dispose();
        if (_deleteOnDispose)
            TryDelete(Path);
    }

    private void ReadFully(Span<byte> destination, long offset)
    {
        while (!destination.IsEmpty)
        {
            var n = RandomAccess.Read(_handle, destination, offset);
            if (n == 0)
                throw new EndOfStreamException($"Swap file '{Path}' ended at byte {offset}.");
            destination = destination[n..];
            offset += n;
        }
    }

    private long Check(int slot, int length)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if ((uint)slot >= (uint)SlotCount)
            throw new ArgumentOutOfRangeException(nameof(slot), slot, $"Swap slot must be in 0..{SlotCount - 1} for '{Path}'.");
        if (length != Page.Size)
            throw new ArgumentException($"A swap slot holds exactly {Page.Size} bytes; the buffer has {length}.", nameof(length));
        return (long)slot * Page.Size;
    }

    private long CheckRun(int firstSlot, int pageCount, int length)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (pageCount <= 0 || firstSlot < 0 || firstSlot > SlotCount - pageCount)
            throw new ArgumentOutOfRangeException(nameof(firstSlot), firstSlot,
                $"Slots [{firstSlot}, {firstSlot + pageCount}) are outside 0..{SlotCount - 1} of '{Path}'.");
        if (length != pageCount * Page.Size)
            throw new ArgumentException($"{pageCount} slots hold {pageCount * Page.Size} bytes; the buffer has {length}.", nameof(length));
        return (long)firstSlot * Page.Size;
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
            // A swap file that cannot be removed is garbage on disk, not a reason to fail the VM's teardown.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}

/// <summary>A private swap file could not be created or used; the message names the file.</summary>
public sealed class SwapFileException : IOException
{
    /// <summary>Creates the exception.</summary>
    public SwapFileException(string message, Exception? inner = null) : base(message, inner)
    {
    }
}
