using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Workloads;
using ApiWorkload = MigrationFabric.Contracts.V1.Workload;

namespace MigrationFabric.Host.Hypervisor;

/// <summary>An emulated VM on this host: its guest memory, its MMU and the workload its vCPUs run.</summary>
public sealed class LocalVm : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private Task _run = Task.CompletedTask;
    private int _disposed;

    internal LocalVm(string name, ApiWorkload workload, long memoryBytes, IPageFaultHandler? faultHandler = null)
    {
        Name = name;
        WorkloadSpec = workload;
        Memory = new GuestMemory(memoryBytes);
        try
        {
            Mmu = new SoftwareMmu(Memory, faultHandler);
        }
        catch
        {
            Memory.Dispose();
            throw;
        }
    }

    /// <summary>The VM's name.</summary>
    public string Name { get; }

    /// <summary>The workload as the API described it.</summary>
    public ApiWorkload WorkloadSpec { get; }

    /// <summary>Its guest memory.</summary>
    public GuestMemory Memory { get; }

    /// <summary>The MMU its vCPUs run on.</summary>
    public SoftwareMmu Mmu { get; }

    /// <summary>The running workload (null until started).</summary>
    public Memory.Workloads.Workload? Workload { get; private set; }

    /// <summary>When the workload started (its timeline's zero).</summary>
    public DateTimeOffset WorkloadStartedAt { get; private set; }

    /// <summary>Memory size in bytes.</summary>
    public long MemoryBytes => Memory.PageCount * Page.Size;

    /// <summary>Bytes resident in physical memory here.</summary>
    public long ResidentBytes => Memory.ResidentPages * Page.Size;

    /// <summary>True while the vCPUs are paused.</summary>
    public bool IsPaused => Mmu.IsPaused;

    /// <summary>The workload's run (faults if a vCPU failed).</summary>
    public Task Run => _run;

    /// <summary>Starts the vCPUs with a workload made for this VM (<paramref name="resumed"/>: after a migration).</summary>
    public void Start(bool resumed)
    {
        if (Workload is not null) throw new InvalidOperationException($"VM {Name} is already running.");
        var workload = WorkloadFactory.Create(WorkloadSpec, Memory.PageCount, resumed);
        Workload = workload;
        WorkloadStartedAt = DateTimeOffset.UtcNow;
        _run = Task.Run(() => workload.RunAsync(Mmu, _stop.Token));
    }

    /// <summary>Stops the vCPUs and frees the memory.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        await _stop.CancelAsync().ConfigureAwait(false);
        if (Mmu.IsPaused) Mmu.Resume();
        try
        {
            await _run.ConfigureAwait(false);
        }
        catch (Exception)
        {
            // A vCPU failure was already visible through Run; the VM is going away either way.
        }
        Mmu.Dispose();
        Memory.Dispose();
        _stop.Dispose();
    }
}
