using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Pages;

namespace MigrationFabric.Memory.Mmu;

/// <summary>Makes a non-resident page present: reads it from private swap, fetches it from a remote host, ...</summary>
/// <remarks>
/// The MMU calls it once per page however many vCPUs fault on that page together; the faulting vCPUs
/// block (only them) until it completes. The handler must leave the page Resident, normally with
/// <see cref="GuestMemory.TryInstall"/> or <see cref="GuestMemory.BeginInstall"/>/<see cref="GuestMemory.CompleteInstall"/>
/// from <see cref="PageFault.Residency"/>; if someone else installed it meanwhile, that is fine too.
/// It runs on the faulting vCPU's thread until its first await: a handler that completes synchronously
/// (a local swap read) costs no thread switch and no allocation.
/// </remarks>
public interface IPageFaultHandler
{
    /// <summary>Resolves <paramref name="fault"/>; <paramref name="cancellationToken"/> fires when the MMU is disposed.</summary>
    ValueTask ResolveAsync(PageFault fault, CancellationToken cancellationToken);
}

/// <summary>A vCPU touched a page that is not in this host's RAM.</summary>
/// <param name="Memory">The guest memory faulted on.</param>
/// <param name="Page">The page.</param>
/// <param name="Residency">Where the page was when the fault was taken (Swapped or Remote).</param>
/// <param name="Access">Read or write.</param>
/// <param name="VcpuId">The first faulting vCPU.</param>
public readonly record struct PageFault(GuestMemory Memory, PageNumber Page, PageResidency Residency, PageAccess Access, int VcpuId);

/// <summary>A vCPU's page fault could not be resolved; the vCPU stops with this.</summary>
public sealed class PageFaultException : Exception
{
    /// <summary>Creates the exception for <paramref name="page"/>.</summary>
    public PageFaultException(PageNumber page, string message, Exception? inner = null)
        : base($"page fault on {page}: {message}", inner) => Page = page;

    /// <summary>The page that could not be made present.</summary>
    public PageNumber Page { get; }
}
