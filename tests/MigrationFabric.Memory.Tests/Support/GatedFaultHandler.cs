using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;

namespace MigrationFabric.Memory.Tests.Support;

/// <summary>A local fault handler that fills a page with a byte derived from its number, optionally held back by a gate.</summary>
internal sealed class GatedFaultHandler : IPageFaultHandler
{
    private readonly ManualResetEventSlim? _gate;
    private int _calls;
    private int _entered;

    public GatedFaultHandler(ManualResetEventSlim? gate = null, bool async = false)
    {
        _gate = gate;
        Async = async;
    }

    public bool Async { get; }
    public int Calls => Volatile.Read(ref _calls);
    public ManualResetEventSlim Entered { get; } = new();
    public int EnteredCount => Volatile.Read(ref _entered);
    public Exception? Throw { get; set; }

    public static byte ContentOf(long page) => (byte)(page * 7 + 1);

    public async ValueTask ResolveAsync(PageFault fault, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _calls);
        Interlocked.Increment(ref _entered);
        Entered.Set();
        if (Async) await Task.Yield();
        if (_gate is not null && !_gate.Wait(TimeSpan.FromSeconds(30), cancellationToken))
            throw new TimeoutException("test gate never opened");
        if (Throw is { } e) throw e;
        var dest = fault.Memory.BeginInstall(fault.Page, fault.Residency);
        if (dest.IsEmpty) return;
        dest.Fill(ContentOf(fault.Page));
        fault.Memory.CompleteInstall(fault.Page, fault.Residency);
    }
}
