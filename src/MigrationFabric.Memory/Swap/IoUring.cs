using System.Runtime.InteropServices;

namespace MigrationFabric.Memory.Swap;

/// <summary>A Linux io_uring that writes from buffers registered with it once (IORING_OP_WRITE_FIXED): one thread's ring, submitted and reaped with io_uring_enter.</summary>
/// <remarks>
/// An O_DIRECT pwrite pins its buffer's pages for every write and unpins them after; a registered buffer stays pinned
/// for the ring's life, so its writes skip both (fio on this machine, 3 GiB in 1 MiB O_DIRECT writes: 0.25 CPU s with
/// pwrite, 0.18 with fixed buffers). Not thread-safe: each writer thread owns its ring. Prepared writes are all
/// completed before <see cref="SubmitAndWait"/> returns or throws, so no write can still read a buffer its caller reuses.
/// </remarks>
internal sealed unsafe partial class IoUring : IDisposable
{
    private const long SetupCall = 425, EnterCall = 426, RegisterCall = 427;
    private const uint EnterGetEvents = 1, RegisterBuffers = 0, FeatSingleMmap = 1;
    private const byte OpWriteFixed = 5;
    private const long OffSqRing = 0, OffCqRing = 0x8000000, OffSqes = 0x10000000;
    private const int ProtRead = 1, ProtWrite = 2, MapShared = 1, MapPopulate = 0x8000;
    private const int SqeSize = 64, CqeSize = 16, Eintr = 4;

    private readonly int _fd;
    private readonly nint _sqRing, _cqRing, _sqes;
    private readonly nuint _sqRingLength, _cqRingLength, _sqesLength;
    private readonly uint* _sqTail, _sqArray, _cqHead, _cqTail;
    private readonly uint _sqMask, _cqMask;
    private readonly byte* _cqeBase;
    private readonly nint[] _bufferStarts;
    private readonly int _bufferLength;
    private readonly PendingWrite[] _pending;
    private int _prepared;
    private string? _broken;
    private int _disposed;

    private record struct PendingWrite(int Fd, int Buffer, nint Address, int Length, long Offset);

    private IoUring(int fd, uint entries, nint sqRing, nuint sqRingLength, nint cqRing, nuint cqRingLength, nint sqes, nuint sqesLength,
        ReadOnlySpan<byte> p, nint[] bufferStarts, int bufferLength)
    {
        _fd = fd;
        (_sqRing, _sqRingLength, _cqRing, _cqRingLength, _sqes, _sqesLength) = (sqRing, sqRingLength, cqRing, cqRingLength, sqes, sqesLength);
        var sq = (byte*)sqRing;
        var cq = (byte*)cqRing;
        _sqTail = (uint*)(sq + U32(p, 44));
        _sqMask = *(uint*)(sq + U32(p, 48));
        _sqArray = (uint*)(sq + U32(p, 64));
        _cqHead = (uint*)(cq + U32(p, 80));
        _cqTail = (uint*)(cq + U32(p, 84));
        _cqMask = *(uint*)(cq + U32(p, 88));
        _cqeBase = cq + U32(p, 100);
        _bufferStarts = bufferStarts;
        _bufferLength = bufferLength;
        _pending = new PendingWrite[entries];
    }

    /// <summary>Writes a <see cref="SubmitAndWait"/> takes at once (the ring's submission entries).</summary>
    public int Capacity => _pending.Length;

    /// <summary>Writes prepared and not submitted yet.</summary>
    public int Prepared => _prepared;

    /// <summary>Sets up a ring of <paramref name="entries"/> and registers <paramref name="buffers"/> (each <paramref name="bufferLength"/> bytes); null with <paramref name="refusal"/> saying why where the kernel or platform refuses.</summary>
    public static IoUring? TryCreate(int entries, IReadOnlyList<nint> buffers, int bufferLength, out string? refusal)
    {
        ArgumentNullException.ThrowIfNull(buffers);
        if (entries is < 1 or > 4096 || (entries & (entries - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(entries), entries, "an io_uring's entries must be a power of two within 1..4096.");
        if (buffers.Count is 0 or > 16384)
            throw new ArgumentOutOfRangeException(nameof(buffers), buffers.Count, "an io_uring registers 1 to 16384 buffers.");
        if (bufferLength <= 0)
            throw new ArgumentOutOfRangeException(nameof(bufferLength), bufferLength, "registered buffers must be at least one byte long.");
        for (var i = 0; i < buffers.Count; i++)
        {
            if (buffers[i] == 0) throw new ArgumentException($"buffer {i} to register is null.", nameof(buffers));
        }
        if (!OperatingSystem.IsLinux())
        {
            refusal = "io_uring is Linux's";
            return null;
        }
        Span<byte> p = stackalloc byte[120];
        p.Clear();
        int fd;
        fixed (byte* pp = p) fd = (int)Syscall(SetupCall, entries, (long)pp, 0, 0, 0);
        if (fd < 0)
        {
            refusal = Refusal("io_uring_setup");
            return null;
        }
        nint sqRing = 0, cqRing = 0, sqes = 0;
        nuint sqLength = 0, cqLength = 0, sqesLength = 0;
        try
        {
            uint sqEntries = U32(p, 0), cqEntries = U32(p, 4), features = U32(p, 20);
            sqLength = U32(p, 64) + sqEntries * 4u;
            cqLength = U32(p, 100) + cqEntries * (nuint)CqeSize;
            var single = (features & FeatSingleMmap) != 0;
            if (single) sqLength = cqLength = Math.Max(sqLength, cqLength);
            sqRing = Map(sqLength, fd, OffSqRing, "submission ring");
            cqRing = single ? sqRing : Map(cqLength, fd, OffCqRing, "completion ring");
            sqesLength = sqEntries * (nuint)SqeSize;
            sqes = Map(sqesLength, fd, OffSqes, "submission entries");

            // struct iovec { void *iov_base; size_t iov_len; } per buffer.
            var iovecs = new nint[buffers.Count * 2];
            var starts = new nint[buffers.Count];
            for (var i = 0; i < buffers.Count; i++)
            {
                starts[i] = buffers[i];
                iovecs[2 * i] = buffers[i];
                iovecs[2 * i + 1] = bufferLength;
            }
            fixed (nint* v = iovecs)
            {
                if (Syscall(RegisterCall, fd, RegisterBuffers, (long)v, buffers.Count, 0) < 0)
                    throw new IOException(Refusal($"io_uring_register of {buffers.Count} buffers of {bufferLength} bytes"));
            }
            refusal = null;
            return new IoUring(fd, sqEntries, sqRing, sqLength, cqRing, single ? 0 : cqLength, sqes, sqesLength, p, starts, bufferLength);
        }
        catch (IOException e)
        {
            Unmap(sqRing, sqLength, cqRing, cqRing == sqRing ? 0 : cqLength, sqes, sqesLength);
            _ = Close(fd);
            refusal = e.Message;
            return null;
        }
    }

    /// <summary>Queues a write of <paramref name="source"/>, which lies within registered buffer <paramref name="buffer"/>, to <paramref name="offset"/> of file descriptor <paramref name="fd"/>.</summary>
    /// <exception cref="InvalidOperationException">As many writes as <see cref="Capacity"/> are prepared already.</exception>
    public void PrepareWrite(int fd, int buffer, ReadOnlySpan<byte> source, long offset)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if ((uint)buffer >= (uint)_bufferStarts.Length)
            throw new ArgumentOutOfRangeException(nameof(buffer), buffer, $"the ring has {_bufferStarts.Length} registered buffers.");
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        fixed (byte* s = source)
        {
            var address = (nint)s;
            if (source.IsEmpty || address < _bufferStarts[buffer] || address + source.Length > _bufferStarts[buffer] + _bufferLength)
                throw new ArgumentException($"the {source.Length} bytes to write are not within registered buffer {buffer}.", nameof(source));
            if (_prepared == _pending.Length)
                throw new InvalidOperationException($"{_prepared} writes are prepared already, the ring's capacity; submit them first.");
            _pending[_prepared++] = new PendingWrite(fd, buffer, address, source.Length, offset);
        }
    }

    /// <summary>Submits every prepared write and returns when all are complete (a short write goes on from where it stopped).</summary>
    /// <exception cref="IOException">A write failed (its errno, file offset and length named); the others were completed first.</exception>
    public void SubmitAndWait()
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (_broken is not null) throw new IOException($"the io_uring is unusable since {_broken}.");
        var count = _prepared;
        _prepared = 0;
        var tail = Volatile.Read(ref *_sqTail);
        for (var i = 0; i < count; i++) Enqueue(ref tail, i);
        Volatile.Write(ref *_sqTail, tail);
        var toSubmit = count;
        var outstanding = count;
        string? failure = null;
        while (outstanding > 0)
        {
            var r = Syscall(EnterCall, _fd, toSubmit, 1, EnterGetEvents, 0);
            if (r < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno == Eintr) continue;
                // Entries the kernel did not take stay queued: the ring is not used again, so no later call can send them.
                var reason = $"io_uring_enter failed: errno {errno} ({Marshal.GetPInvokeErrorMessage(errno)})";
                _broken ??= reason;
                if (outstanding == toSubmit) throw new IOException(reason + ".");
                // Writes are in flight and still read their buffers: wait for them (a wait that fails cannot be retried safely).
                if (toSubmit == 0) throw new IOException(reason + $"; {outstanding} writes are still in flight.");
                failure ??= reason;
                outstanding -= toSubmit;
                toSubmit = 0;
                continue;
            }
            toSubmit -= (int)Math.Min(r, toSubmit);
            var head = Volatile.Read(ref *_cqHead);
            var cqTail = Volatile.Read(ref *_cqTail);
            var resubmit = 0;
            while (head != cqTail)
            {
                var cqe = _cqeBase + (head & _cqMask) * (nuint)CqeSize;
                var index = (int)*(ulong*)cqe;
                var res = *(int*)(cqe + 8);
                head++;
                outstanding--;
                ref var w = ref _pending[index];
                if (res < 0)
                {
                    failure ??= $"write of {w.Length} bytes at offset {w.Offset} failed: errno {-res} ({Marshal.GetPInvokeErrorMessage(-res)})";
                }
                else if (res == 0)
                {
                    failure ??= $"write of {w.Length} bytes at offset {w.Offset} wrote nothing";
                }
                else if (res < w.Length)
                {
                    w = w with { Address = w.Address + res, Length = w.Length - res, Offset = w.Offset + res };
                    var t = Volatile.Read(ref *_sqTail);
                    Enqueue(ref t, index);
                    Volatile.Write(ref *_sqTail, t);
                    resubmit++;
                }
            }
            Volatile.Write(ref *_cqHead, head);
            toSubmit += resubmit;
            outstanding += resubmit;
        }
        if (failure is not null) throw new IOException(failure + ".");
    }

    private void Enqueue(ref uint tail, int index)
    {
        var w = _pending[index];
        var slot = tail & _sqMask;
        var sqe = (byte*)_sqes + slot * (nuint)SqeSize;
        new Span<byte>(sqe, SqeSize).Clear();
        sqe[0] = OpWriteFixed;
        *(int*)(sqe + 4) = w.Fd;
        *(long*)(sqe + 8) = w.Offset;
        *(long*)(sqe + 16) = w.Address;
        *(uint*)(sqe + 24) = (uint)w.Length;
        *(ulong*)(sqe + 32) = (ulong)index;
        *(ushort*)(sqe + 40) = (ushort)w.Buffer;
        _sqArray[slot] = slot;
        tail++;
    }

    /// <summary>Unregisters the buffers and closes the ring.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        Unmap(_sqRing, _sqRingLength, _cqRing, _cqRingLength, _sqes, _sqesLength);
        _ = Close(_fd);
    }

    private static uint U32(ReadOnlySpan<byte> p, int offset) => MemoryMarshal.Read<uint>(p[offset..]);

    private static nint Map(nuint length, int fd, long offset, string what)
    {
        var p = Mmap(0, length, ProtRead | ProtWrite, MapShared | MapPopulate, fd, offset);
        return p == -1 ? throw new IOException(Refusal($"mmap of the io_uring's {what} ({length} bytes)")) : p;
    }

    private static void Unmap(nint sqRing, nuint sqLength, nint cqRing, nuint cqLength, nint sqes, nuint sqesLength)
    {
        if (sqes != 0) _ = Munmap(sqes, sqesLength);
        if (cqRing != 0 && cqLength != 0 && cqRing != sqRing) _ = Munmap(cqRing, cqLength);
        if (sqRing != 0) _ = Munmap(sqRing, sqLength);
    }

    private static string Refusal(string what)
    {
        var errno = Marshal.GetLastPInvokeError();
        return $"{what} failed: errno {errno} ({Marshal.GetPInvokeErrorMessage(errno)})";
    }

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall(long number, long a, long b, long c, long d, long e);

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static partial nint Mmap(nint address, nuint length, int protection, int flags, int fd, long offset);

    [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
    private static partial int Munmap(nint address, nuint length);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
