using System.Runtime.InteropServices;
using MigrationFabric.Memory.Pages;

namespace MigrationFabric.Memory.Guest;

/// <summary>RAM set aside for a VM's fixed physical share before its pages arrive: frames that <see cref="GuestMemory.AdoptFrames"/> moves under guest pages.</summary>
/// <remarks>
/// A private anonymous mapping of its own, populated up front by <see cref="Populate"/> (on a host whose hypervisor
/// reclaims free memory that costs 1-3 CPU s per GiB). Frames are handed out from the front with mremap, which moves
/// page-table entries and copies nothing, so a page placed on them costs no fault and no page clear. Moved frames
/// belong to the guest memory from then on (its unmap frees them); disposing the pool frees only the frames it still
/// holds. Linux only: elsewhere <see cref="Populate"/> returns false and nothing is ever moved.
/// </remarks>
public sealed unsafe class FramePool : IDisposable
{
    /// <summary>Pages populated per madvise call: small enough to stop soon on cancellation, large enough to cost nothing per call.</summary>
    public const int PopulateStepPages = 2048;

    private readonly Lock _lock = new();
    private readonly bool _mapped;
    private byte* _base;
    private long _taken;
    private string? _refusal;

    /// <summary>Maps <paramref name="pages"/> frames, holding no RAM until <see cref="Populate"/>.</summary>
    /// <param name="pages">Frames in the pool.</param>
    /// <param name="transparentHugePages">The same advice as the guest memory's (<see cref="GuestMemoryOptions.TransparentHugePages"/>), so moved frames behave as the guest's own.</param>
    /// <exception cref="InsufficientMemoryException">The address space could not be mapped (the host cannot set the frames aside).</exception>
    public FramePool(long pages, bool transparentHugePages = false)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(pages);
        Pages = pages;
        if (!OperatingSystem.IsLinux()) return;
        _base = (byte*)NativeMapping.MapFresh((nuint)(pages << Page.Shift), transparentHugePages, $"a frame pool of {pages} pages");
        _mapped = true;
    }

    /// <summary>Frames the pool was made with.</summary>
    public long Pages { get; }

    /// <summary>Frames not handed out yet.</summary>
    public long FreePages
    {
        get { lock (_lock) return _base == null ? 0 : Pages - _taken; }
    }

    /// <summary>Why the kernel refused to move frames (mremap's errno), after which the pool moves none; null while it has not.</summary>
    public string? Refusal
    {
        get { lock (_lock) return _refusal; }
    }

    /// <summary>Puts RAM behind every frame still in the pool (MADV_POPULATE_WRITE), in steps of <see cref="PopulateStepPages"/>.</summary>
    /// <returns>False where the kernel cannot (before Linux 5.14, or not Linux): frames then get RAM at their first write, as guest pages do.</returns>
    /// <exception cref="InsufficientMemoryException">The host could not provide the RAM (ENOMEM).</exception>
    /// <exception cref="InvalidOperationException">Any other refusal, with its errno.</exception>
    /// <exception cref="OperationCanceledException">Cancelled between steps; the frames populated so far stay.</exception>
    public bool Populate(CancellationToken cancellationToken)
    {
        if (!_mapped) return false;
        long next = 0;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            lock (_lock)
            {
                ObjectDisposedException.ThrowIf(_base == null, this);
                // Frames handed out meanwhile are the guest's now; populate only what the pool still holds.
                next = Math.Max(next, _taken);
                if (next >= Pages) return true;
                long count = Math.Min(PopulateStepPages, Pages - next);
                if (NativeMapping.Madvise((nint)(_base + (next << Page.Shift)), (nuint)(count << Page.Shift), NativeMapping.MadvPopulateWrite) != 0)
                    return NativeMapping.PopulateRefusal(Marshal.GetLastPInvokeError(), next << Page.Shift, count << Page.Shift) is { } refusal ? throw refusal : false;
                next += count;
            }
        }
    }

    /// <summary>Moves the pool's next <paramref name="pages"/> frames to <paramref name="target"/> (page-aligned, inside a private anonymous mapping), replacing what was mapped there.</summary>
    /// <returns>False (nothing changed) if fewer frames are left or the kernel refuses (then <see cref="Refusal"/> says why and no later call moves any).</returns>
    internal bool TryMoveTo(nint target, int pages)
    {
        lock (_lock)
        {
            if (_base == null || _refusal is not null || pages <= 0 || Pages - _taken < pages) return false;
            _refusal = NativeMapping.Remap((nint)(_base + (_taken << Page.Shift)), (nuint)((long)pages << Page.Shift), target, 0);
            if (_refusal is not null) return false;
            _taken += pages;
            return true;
        }
    }

    /// <summary>Frees the frames the pool still holds; frames moved to a guest memory stay there.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            var b = _base;
            if (b == null) return;
            _base = null;
            // Only the part still ours: the moved frames' old addresses may be mapped by someone else by now.
            if (_mapped && _taken < Pages)
                _ = NativeMapping.Munmap((nint)(b + (_taken << Page.Shift)), (nuint)((Pages - _taken) << Page.Shift));
        }
    }
}
