namespace MigrationFabric.Host.Migrations;

/// <summary>What a host can still admit, as the planner sees it.</summary>
/// <param name="Host">The host's name.</param>
/// <param name="Endpoint">Its agent's gRPC endpoint (scheduler API and data plane).</param>
/// <param name="BudgetBytes">Its physical-memory budget.</param>
/// <param name="FreeBytes">Budget minus what is reserved there now.</param>
public sealed record HostRoom(string Host, string Endpoint, long BudgetBytes, long FreeBytes);

/// <summary>The VM as the planner sees it at its source.</summary>
/// <param name="Name">The VM's name.</param>
/// <param name="Host">Its source host.</param>
/// <param name="MemoryBytes">Its size.</param>
/// <param name="InPrivateMemory">It lives in private virtual memory there (its share below its size).</param>
/// <param name="RemoteHosts">Hosts holding part of its memory (it was split); empty when all of it is at its host.</param>
public sealed record VmFacts(string Name, string Host, long MemoryBytes, bool InPrivateMemory, string[] RemoteHosts);

/// <summary>One host receiving part (or all) of a migrating VM.</summary>
/// <param name="Host">The host's name.</param>
/// <param name="Endpoint">Its data-plane endpoint.</param>
/// <param name="Role">"destination", "main", "sub-host" or "intermediate" (as DestinationProgress.role says).</param>
/// <param name="ReserveBytes">Physical memory it reserves for its part (released if the migration fails or is cancelled).</param>
/// <param name="PagesPlanned">Pages of the VM planned for it (0 when every page may go there).</param>
public sealed record PlannedHost(string Host, string Endpoint, string Role, long ReserveBytes, long PagesPlanned);

/// <summary>Where each part of a migrating VM goes and what each receiving host reserves; made by <see cref="MigrationPlanner"/>.</summary>
/// <param name="Destination">The host that runs the vCPUs afterwards (split: the main host; scatter-gather: the gathering host).</param>
/// <param name="Others">Split sub-hosts or scatter-gather intermediates, in the request's order (empty otherwise).</param>
/// <param name="SharePages">Destination pages held in RAM: the private share (VMemDirect, naive swap) or the main's budget (split); 0 for the whole VM.</param>
/// <param name="SourceInPrivateMemory">The source reads the VM through its private virtual memory (devirtualizing, or VMemDirect from a small host).</param>
/// <param name="ReservationBytes">The VM's VMMB reservation, which the destination gives it again (CreateVmRequest.reservation_bytes).</param>
/// <param name="Weight">The VM's VMMB weight, which the destination gives it again (CreateVmRequest.weight; 1 when unset).</param>
/// <param name="DestinationPreallocation">How long the destination took to preallocate the VM's RAM at prepare (zero when it did not), for the report.</param>
public sealed record MigrationPlan(PlannedHost Destination, PlannedHost[] Others, long SharePages, bool SourceInPrivateMemory, long ReservationBytes = 0, uint Weight = 1,
    TimeSpan DestinationPreallocation = default);
