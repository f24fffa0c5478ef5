using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Tracking;

namespace MigrationFabric.Memory.Mmu;

/// <summary>One guest vCPU's view of memory: every load and store goes through here, one page at a time.</summary>
/// <remarks>
/// Fast path per page touched: announce the page, one residency byte and one control word read, the
/// access bit, the copy, the dirty bit (each bit a plain read when already set). Anything else (fault, first touch,
/// pause, throttle, a page in transition) is the slow path. Use from a single thread.
/// </remarks>
public sealed unsafe class VirtualCpu : IDisposable
{
    private readonly SoftwareMmu _mmu;
    private readonly GuestMemory _memory;
    private readonly DirtyBitmap _dirty;
    private readonly AccessBitmap _accessed;
    private readonly byte* _base;
    private readonly long _size;
    private bool _disposed;

    internal VirtualCpu(SoftwareMmu mmu, int id, VcpuHazards.Slot slot, CancellationToken cancellationToken)
    {
        _mmu = mmu;
        _memory = mmu.Memory;
        _dirty = _memory.Dirty;
        _accessed = _memory.Accessed;
        _base = _memory.Base;
        _size = _memory.SizeBytes;
        Id = id;
        Slot = slot;
        CancellationToken = cancellationToken;
    }

    /// <summary>The vCPU's index in its MMU.</summary>
    public int Id { get; }

    /// <summary>Ends this vCPU's waits.</summary>
    public CancellationToken CancellationToken { get; }

    internal VcpuHazards.Slot Slot { get; }

    internal long RunStart;

    /// <summary>Stores <paramref name="source"/> at guest-physical <paramref name="address"/> (may span pages).</summary>
    public void Write(long address, ReadOnlySpan<byte> source)
    {
        CheckAccess(address, source.Length);
        while (!source.IsEmpty)
        {
            long page = address >> Page.Shift;
            int n = Math.Min(source.Length, Page.Size - (int)(address & Page.OffsetMask));
            Enter(page, PageAccess.Write);
            source[..n].CopyTo(new Span<byte>(_base + address, n));
            ExitWrite(page);
            source = source[n..];
            address += n;
        }
    }

    /// <summary>Loads guest-physical [address, address + destination.Length) into <paramref name="destination"/> (may span pages).</summary>
    public void Read(long address, Span<byte> destination)
    {
        CheckAccess(address, destination.Length);
        while (!destination.IsEmpty)
        {
            long page = address >> Page.Shift;
            int n = Math.Min(destination.Length, Page.Size - (int)(address & Page.OffsetMask));
            Enter(page, PageAccess.Read);
            new ReadOnlySpan<byte>(_base + address, n).CopyTo(destination);
            Exit();
            destination = destination[n..];
            address += n;
        }
    }

    /// <summary>Sets guest-physical [address, address + length) to <paramref name="value"/> (may span pages).</summary>
    public void Fill(long address, long length, byte value)
    {
        CheckAccess(address, length);
        while (length > 0)
        {
            long page = address >> Page.Shift;
            int n = (int)Math.Min(length, Page.Size - (address & Page.OffsetMask));
            Enter(page, PageAccess.Write);
            new Span<byte>(_base + address, n).Fill(value);
            ExitWrite(page);
            length -= n;
            address += n;
        }
    }

    /// <summary>Loads the little-endian 8-byte value at an 8-byte-aligned guest-physical address.</summary>
    public ulong ReadUInt64(long address)
    {
        CheckAligned(address);
        Enter(address >> Page.Shift, PageAccess.Read);
        ulong v = BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(_base + address, 8));
        Exit();
        return v;
    }

    /// <summary>Stores a little-endian 8-byte value at an 8-byte-aligned guest-physical address.</summary>
    public void WriteUInt64(long address, ulong value)
    {
        CheckAligned(address);
        long page = address >> Page.Shift;
        Enter(page, PageAccess.Write);
        BinaryPrimitives.WriteUInt64LittleEndian(new Span<byte>(_base + address, 8), value);
        ExitWrite(page);
    }

    /// <summary>Leaves the MMU (a stopped vCPU no longer counts for pause).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Volatile.Write(ref Slot.Page, VcpuHazards.None);
        _memory.Hazards.Unregister(Slot);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Enter(long page, PageAccess access)
    {
        // Announce first, then look: see VcpuHazards for why no fence is needed here.
        Volatile.Write(ref Slot.Page, page);
        if ((_mmu.Control | (_memory.ResidencyByte(page) ^ (int)PageResidency.Resident)) != 0)
            EnterSlow(page, access);
        _accessed.MarkAccessed(page);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Exit() => Volatile.Write(ref Slot.Page, VcpuHazards.None);

    /// <summary>Ends a store: the dirty bit is set after the bytes, and before leaving the page.</summary>
    /// <remarks>
    /// After the bytes, so a harvest that takes the bit reads the new bytes (GuestMemory.HarvestDirty);
    /// before leaving, so once Pause returns every completed store has its bit.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void ExitWrite(long page)
    {
        _dirty.MarkDirty(page);
        Volatile.Write(ref Slot.Page, VcpuHazards.None);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void EnterSlow(long page, PageAccess access)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_mmu.Control != 0)
        {
            Exit();
            _mmu.OnControl(this);
            Volatile.Write(ref Slot.Page, page);
        }
        int handlerCalls = 0;
        var spin = new SpinWait();
        while (true)
        {
            var r = (PageResidency)_memory.ResidencyByte(page);
            if (r == PageResidency.Resident)
            {
                // A pause published while we were out of memory must still stop us before we touch the page.
                if ((_mmu.Control & (SoftwareMmu.ControlPaused | SoftwareMmu.ControlDisposed)) == 0) return;
                Exit();
                _mmu.OnControl(this);
                Volatile.Write(ref Slot.Page, page);
                continue;
            }
            Exit();
            switch (r)
            {
                case PageResidency.Zero or PageResidency.Ballooned:
                    if (_memory.TryTouchZero(page, r)) _mmu.CountFirstTouch(r);
                    break;
                case PageResidency.Evicting or PageResidency.Installing:
                    CancellationToken.ThrowIfCancellationRequested();
                    spin.SpinOnce(sleep1Threshold: 20);
                    break;
                default:
                    if (++handlerCalls > _mmu.Options.MaxFaultRetries)
                        throw new PageFaultException(page,
                            $"the page is still {r} after {_mmu.Options.MaxFaultRetries} handler calls (SoftwareMmuOptions.MaxFaultRetries): the handler did not install it.");
                    _mmu.ResolveFault(this, page, access);
                    break;
            }
            Volatile.Write(ref Slot.Page, page);
        }
    }

    private void CheckAccess(long address, long length)
    {
        if (address < 0 || length < 0 || address > _size - length)
            throw new ArgumentOutOfRangeException(nameof(address),
                $"guest access [{address}, {address + length}) is outside guest memory of {_size} bytes ({_size >> Page.Shift} pages).");
    }

    private void CheckAligned(long address)
    {
        CheckAccess(address, 8);
        if ((address & 7) != 0)
            throw new ArgumentException($"8-byte guest access at {address} is not 8-byte aligned.", nameof(address));
    }
}
