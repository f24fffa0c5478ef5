using MigrationFabric.Memory.Pages;

namespace MigrationFabric.Memory.Guest;

/// <summary>Frames of evicted chunks kept for the next page-in: a fixed share reuses its RAM instead of handing it back to the kernel and having it cleared again.</summary>
/// <remarks>
/// Slots of <see cref="SlotPages"/> pages in a private anonymous mapping of their own. <see cref="GuestMemory.CompleteEviction(PageNumber, int, PageResidency, FrameRecycler?)"/>
/// parks a whole evicted chunk's frames in an empty slot and <see cref="GuestMemory.AdoptRecycledFrames"/> moves a full slot's
/// frames under a chunk being paged in, both with mremap(MREMAP_DONTUNMAP): page-table entries move, the range left behind
/// stays mapped and reads as zeroes, nothing is copied or cleared. A parked frame holds an evicted page's old bytes, so only
/// a range whose every page is about to be overwritten may adopt it. When the slots are all full or all empty, or the kernel
/// refuses (<see cref="Refusal"/>), callers discard and fault as without it. Linux only.
/// </remarks>
public sealed unsafe class FrameRecycler : IDisposable
{
    private const int MremapDontUnmap = 4;

    private readonly Lock _lock = new();
    private readonly Stack<int> _empty = new();
    private readonly Stack<int> _full = new();
    private byte* _base;
    private string? _refusal;
    private long _parked, _adopted;

    /// <summary>Maps <paramref name="slots"/> empty slots of <paramref name="slotPages"/> pages (no RAM until frames are parked).</summary>
    /// <exception cref="InsufficientMemoryException">The address space could not be mapped.</exception>
    public FrameRecycler(int slots, int slotPages, bool transparentHugePages = false)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(slots);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(slotPages);
        Slots = slots;
        SlotPages = slotPages;
        if (!OperatingSystem.IsLinux()) return;
        _base = (byte*)NativeMapping.MapFresh(Length, transparentHugePages, $"{slots} frame slots of {slotPages} pages");
        for (var s = slots - 1; s >= 0; s--) _empty.Push(s);
    }

    /// <summary>Slots.</summary>
    public int Slots { get; }

    /// <summary>Pages per slot: a whole chunk's.</summary>
    public int SlotPages { get; }

    /// <summary>Slots holding parked frames now.</summary>
    public int FullSlots
    {
        get { lock (_lock) return _full.Count; }
    }

    /// <summary>Chunks' frames parked so far.</summary>
    public long Parked => Volatile.Read(ref _parked);

    /// <summary>Chunks paged in onto parked frames so far.</summary>
    public long Adopted => Volatile.Read(ref _adopted);

    /// <summary>Why the kernel refused a move (mremap's errno), after which no frames move; null while it has not.</summary>
    public string? Refusal
    {
        get { lock (_lock) return _refusal; }
    }

    private nuint Length => (nuint)((long)Slots * SlotPages << Page.Shift);

    private nuint SlotBytes => (nuint)((long)SlotPages << Page.Shift);

    /// <summary>Moves the <see cref="SlotPages"/> frames at <paramref name="from"/> into an empty slot; <paramref name="from"/> then reads as zeroes, as after a discard.</summary>
    /// <returns>False (nothing changed) if every slot is full, the recycler is disposed, or the kernel refuses.</returns>
    internal bool TryPark(nint from)
    {
        lock (_lock)
        {
            if (_base == null || _refusal is not null || !_empty.TryPeek(out var slot)) return false;
            if (!Move(from, (nint)(_base + (long)slot * (long)SlotBytes))) return false;
            _full.Push(_empty.Pop());
            _parked++;
            return true;
        }
    }

    /// <summary>Moves a full slot's frames to <paramref name="to"/>, replacing what was mapped there; the slot reads as zeroes after.</summary>
    /// <returns>False (nothing changed) if no slot is full, the recycler is disposed, or the kernel refuses.</returns>
    internal bool TryUnpark(nint to)
    {
        lock (_lock)
        {
            if (_base == null || _refusal is not null || !_full.TryPeek(out var slot)) return false;
            if (!Move((nint)(_base + (long)slot * (long)SlotBytes), to)) return false;
            _empty.Push(_full.Pop());
            _adopted++;
            return true;
        }
    }

    // Caller holds _lock. DONTUNMAP keeps the source range mapped (empty), so no address this recycler or the guest owns ever
    // becomes a hole another mapping could take.
    private bool Move(nint from, nint to)
    {
        _refusal = NativeMapping.Remap(from, SlotBytes, to, MremapDontUnmap);
        return _refusal is null;
    }

    /// <summary>Frees every parked frame and the slots.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            var b = _base;
            if (b == null) return;
            _base = null;
            _ = NativeMapping.Munmap((nint)b, Length);
        }
    }
}
