using System.Runtime.InteropServices;

namespace MigrationFabric.Memory.Guest;

/// <summary>The page each vCPU is touching right now, so evictors and pausers can wait until nobody is inside it.</summary>
/// <remarks>
/// Asymmetric Dekker: a vCPU announces its page with a plain volatile store and then reads the page's residency
/// (no fence on the hot path); the rare side (evictor, pauser) publishes its state change, issues a
/// process-wide memory barrier, and only then reads the announcements. Either the evictor sees the
/// announcement and waits, or the vCPU sees the new state and takes its slow path.
/// </remarks>
internal sealed class VcpuHazards
{
    public const long None = -1;
    private readonly Lock _lock = new();
    private Slot[] _slots = [];

    /// <summary>A vCPU's announcement, alone on its cache line.</summary>
    [StructLayout(LayoutKind.Explicit, Size = 128)]
    public sealed class Slot
    {
        [FieldOffset(64)] public long Page = None;
        [FieldOffset(72)] public int Parked;
    }

    public Slot Register()
    {
        var s = new Slot();
        lock (_lock) _slots = [.. _slots, s];
        return s;
    }

    public void Unregister(Slot slot)
    {
        lock (_lock) _slots = Array.FindAll(_slots, x => !ReferenceEquals(x, slot));
    }

    /// <summary>Caller has already published the state change; waits until no vCPU is inside [first, first + count).</summary>
    public void WaitUntilOutside(long first, long count)
    {
        Interlocked.MemoryBarrierProcessWide();
        var slots = Volatile.Read(ref _slots);
        foreach (var s in slots)
        {
            var spin = new SpinWait();
            while (true)
            {
                long p = Volatile.Read(ref s.Page);
                if (p < first || p >= first + count) break;
                spin.SpinOnce();
            }
        }
    }

    /// <summary>Caller has already published a pause; waits until every vCPU is out of guest memory.</summary>
    public void WaitUntilAllOutside(CancellationToken cancellationToken)
    {
        Interlocked.MemoryBarrierProcessWide();
        var slots = Volatile.Read(ref _slots);
        foreach (var s in slots)
        {
            var spin = new SpinWait();
            while (Volatile.Read(ref s.Page) != None)
            {
                cancellationToken.ThrowIfCancellationRequested();
                spin.SpinOnce();
            }
        }
    }
}
