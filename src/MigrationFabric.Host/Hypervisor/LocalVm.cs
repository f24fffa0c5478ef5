using MigrationFabric.Memory.Balancing;
using MigrationFabric.Memory.Ballooning;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Swap;
using MigrationFabric.Memory.Workloads;
using ApiWorkload = MigrationFabric.Contracts.V1.Workload;

namespace MigrationFabric.Host.Hypervisor;

/// <summary>An emulated VM on this host: its guest memory, its MMU and the workload its vCPUs run.</summary>
public sealed class LocalVm : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private Task _run = Task.CompletedTask;
    private int _disposed;

    /// <summary>A VM whose guest memory is all its own (<paramref name="privateMemory"/> null), or an over-committed one whose memory is a private virtual memory.</summary>
    /// <param name="faultHandler">Who resolves faults on pages that are not here (post-copy's remote pager); only without <paramref name="privateMemory"/>.</param>
    /// <param name="privateMemory">Over-commit: the VM keeps <see cref="PrivateVirtualMemoryOptions.SharePages"/> in RAM and the rest in its private swap file
    /// (<see cref="PrivateVirtualMemoryOptions.SwapFilePath"/>, e.g. in the agent's data directory; deleted with the VM). The pager becomes the MMU's fault handler.</param>
    internal LocalVm(string name, ApiWorkload workload, long memoryBytes, IPageFaultHandler? faultHandler = null, PrivateVirtualMemoryOptions? privateMemory = null)
    {
        if (faultHandler is not null && privateMemory is not null)
            throw new ArgumentException($"VM {name}: a private-memory VM's faults are resolved by its pager; it cannot take another fault handler.", nameof(faultHandler));
        Name = name;
        WorkloadSpec = workload;
        Memory = new GuestMemory(new GuestMemoryOptions { SizeBytes = memoryBytes, ResidentBudgetPages = privateMemory?.SharePages });
        try
        {
            if (privateMemory is not null) Pager = new PrivateVirtualMemory(Memory, privateMemory);
            // A pager owns the Swapped state, and a balloon could race its evictions (Swap/README.md), so only a VM without one gets a balloon.
            else Balloon = new Balloon(Memory, new FreePageReport(Memory));
            Mmu = new SoftwareMmu(Memory, Pager ?? faultHandler);
            // The pager harvests the MMU's access bits for its LRU and forwards them; without one the monitor reads them itself.
            Demand = new DemandMonitor(Pager?.ForwardedAccess ?? Memory.Accessed);
            Demand.Start();
        }
        catch
        {
            Demand?.Dispose();
            Pager?.Dispose();
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

    /// <summary>The private virtual memory of an over-committed VM (its share, private swap file and paging), or null when all its memory is its own.</summary>
    public PrivateVirtualMemory? Pager { get; }

    /// <summary>Physical memory this VM may hold here: its pager's share, or its whole size. What admission reserves.</summary>
    public long ShareBytes => Pager is { } pager ? pager.SharePages * Page.Size : MemoryBytes;

    /// <summary>Bytes of its memory in its private swap file here.</summary>
    public long SwappedBytes => Memory.CountOf(PageResidency.Swapped) * Page.Size;

    /// <summary>Bytes of its memory given back to the host by a balloon.</summary>
    public long BalloonedBytes => Memory.CountOf(PageResidency.Ballooned) * Page.Size;

    /// <summary>The balloon of a VM without private memory (null with a pager): how a rebalance lowers a fully-resident VM's footprint.</summary>
    public Balloon? Balloon { get; }

    /// <summary>VMMB: the VM's demand, a miss-ratio curve from sampled access bits, measured from creation to disposal.</summary>
    public DemandMonitor Demand { get; }

    /// <summary>VMMB: memory this VM is guaranteed here, bytes (CreateVmRequest.reservation_bytes; 0 = none).</summary>
    public long ReservationBytes { get; internal set; }

    /// <summary>VMMB: its weight when memory is divided by demand (CreateVmRequest.weight; default 1).</summary>
    public uint Weight { get; internal set; } = 1;

    /// <summary>True while the vCPUs are paused.</summary>
    public bool IsPaused => Mmu.IsPaused;

    /// <summary>The workload's run (faults if a vCPU failed).</summary>
    public Task Run => _run;

    /// <summary>Starts the vCPUs with a fresh guest program made for this VM (a new VM).</summary>
    public void Start() => Launch(WorkloadFactory.Create(WorkloadSpec, Memory.PageCount));

    /// <summary>Starts the vCPUs after a migration: the guest program continues from the source's <paramref name="deviceState"/> (its vCPU state, see <see cref="CaptureDeviceState"/>).</summary>
    /// <remarks>
    /// An empty state is the one case of a fresh start: the source VM never started its workload, so there is no
    /// program to continue. Any other program state the source had is in the blob; a blob that does not fit this
    /// VM's workload is refused (ArgumentException naming what is wrong), never papered over by a restart.
    /// </remarks>
    public void Resume(ReadOnlyMemory<byte> deviceState)
    {
        if (deviceState.IsEmpty)
        {
            Start();
            return;
        }
        Memory.Workloads.Workload workload;
        try
        {
            workload = WorkloadFactory.Resume(WorkloadSpec, Memory.PageCount, deviceState.Span);
        }
        catch (InvalidDataException e)
        {
            throw new ArgumentException($"VM {Name}: device_state does not fit its workload: {e.Message}", nameof(deviceState), e);
        }
        Launch(workload);
    }

    /// <summary>The vCPU state to carry at switch-over (MigrationJob.CaptureDeviceState); the MMU must be paused. Empty when the workload never started.</summary>
    public ReadOnlyMemory<byte> CaptureDeviceState() => Workload is { } workload ? workload.CaptureState() : ReadOnlyMemory<byte>.Empty;

    private void Launch(Memory.Workloads.Workload workload)
    {
        if (Workload is not null) throw new InvalidOperationException($"VM {Name} is already running.");
        Workload = workload;
        WorkloadStartedAt = DateTimeOffset.UtcNow;
        // Called here, not on the pool: once Start returns the vCPUs exist, so a switch-over right away captures their state.
        _run = workload.RunAsync(Mmu, _stop.Token);
    }

    /// <summary>Stops the vCPUs and frees the memory.</summary>
    public ValueTask DisposeAsync() => DisposeAsync(beforeUnmap: null);

    /// <summary>Stops the vCPUs, calls <paramref name="beforeUnmap"/> (what a migration attached to the VM lets go of its memory), then frees the memory.</summary>
    internal async ValueTask DisposeAsync(Action<LocalVm>? beforeUnmap)
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        await _stop.CancelAsync().ConfigureAwait(false);
        await Demand.DisposeAsync().ConfigureAwait(false);
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
        // A fault handler the stopped vCPUs gave up on may still be installing a page (a split main's pager, a gatherer):
        // whoever attached it waits for that here, while the memory is still mapped.
        beforeUnmap?.Invoke(this);
        // The pager detaches from the memory and deletes its swap file before the memory goes.
        if (Pager is not null) await Pager.DisposeAsync().ConfigureAwait(false);
        Memory.Dispose();
        _stop.Dispose();
    }
}
