using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Integrity;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.Reporting;

namespace MigrationFabric.Migration.Strategies;

/// <summary>One migration as the source agent sees it: the VM here, where it goes, and how to report.</summary>
public sealed class MigrationJob
{
    /// <summary>The migration's id (the destination must have accepted an <see cref="IncomingMigration"/> with it).</summary>
    public required string MigrationId { get; init; }

    /// <summary>The VM's name.</summary>
    public required string Vm { get; init; }

    /// <summary>The VM's memory at the source.</summary>
    public required GuestMemory Memory { get; init; }

    /// <summary>The source MMU its vCPUs run on (paused at switch-over, throttled by auto-converge).</summary>
    public required SoftwareMmu Mmu { get; init; }

    /// <summary>The destination agent's data-plane address.</summary>
    public required Uri Destination { get; init; }

    /// <summary>Captures the vCPU and device state once the vCPUs are paused. Default: an empty blob.</summary>
    public Func<ReadOnlyMemory<byte>>? CaptureDeviceState { get; init; }

    /// <summary>This (source) agent's data plane, which serves remote faults after a post-copy switch-over. Required by post-copy and hybrid.</summary>
    public PagesService? LocalPages { get; init; }

    /// <summary>The address the destination reaches <see cref="LocalPages"/> at. Required by post-copy and hybrid.</summary>
    public Uri? LocalAddress { get; init; }

    /// <summary>Receives progress at phase changes, after each round and every ProgressInterval (see <see cref="ProgressFeed"/> for an IAsyncEnumerable). Default null.</summary>
    public IProgress<MigrationProgress>? Progress { get; init; }

    /// <summary>Name of the destination in the report's per-destination bytes. Default the destination's authority.</summary>
    public string? DestinationName { get; init; }

    /// <summary>Reads the source's pages wherever they live (e.g. a private virtual memory's share or swap) for the page streams and the integrity check; required by memory-devirtualizing migration. Default null (pages are read from guest RAM).</summary>
    public IPageContentReader? PageReader { get; init; }

    internal void Validate(bool needsLocalPages)
    {
        ArgumentException.ThrowIfNullOrEmpty(MigrationId, nameof(MigrationId));
        ArgumentException.ThrowIfNullOrEmpty(Vm, nameof(Vm));
        if (Mmu.Memory != Memory) throw new ArgumentException($"{nameof(MigrationJob)}.{nameof(Mmu)} must translate into {nameof(Memory)}.");
        if (needsLocalPages && (LocalPages is null || LocalAddress is null))
            throw new ArgumentException($"{nameof(MigrationJob)}.{nameof(LocalPages)} and {nameof(LocalAddress)} are required for post-copy: the destination faults pages from them.");
    }
}
