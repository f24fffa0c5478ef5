namespace MigrationFabric.Host.Agent;

using MigrationFabric.Host.Hypervisor;
using MigrationFabric.Host.Migrations;
using MigrationFabric.Migration.DataPlane;

/// <summary>What this agent's grains reach locally: the host's name and endpoint, its hypervisor, data plane, parts held for other hosts and migration coordinator.</summary>
public sealed class HostAgentContext
{
    /// <summary>The context of host <paramref name="hostName"/>, keeping its files in <paramref name="dataDirectory"/>.</summary>
    public HostAgentContext(string hostName, LocalHypervisor hypervisor, PagesService pages, string dataDirectory)
    {
        HostName = hostName;
        Hypervisor = hypervisor;
        Pages = pages;
        DataDirectory = dataDirectory;
        Held = new HeldParts(hostName, hypervisor, pages, () => Endpoint);
        // Every way a VM leaves (stopped, migrated away, a failed incoming migration, the agent stopping) goes through the
        // hypervisor: attachments let go of the memory after the vCPUs stop and before it is unmapped.
        hypervisor.BeforeUnmap = Attachments.Detach;
    }

    /// <summary>The host's name.</summary>
    public string HostName { get; }

    /// <summary>The scheduler API / data-plane endpoint (set once the server listens).</summary>
    public string Endpoint { get; internal set; } = "";

    /// <summary>This host's VMs and budget.</summary>
    public LocalHypervisor Hypervisor { get; }

    /// <summary>This host's data plane.</summary>
    public PagesService Pages { get; }

    /// <summary>What carries the pages of migrations this host is the source of (HostAgentOptions.DataChannel).</summary>
    public DataChannel DataChannel { get; init; } = DataChannel.Tcp;

    /// <summary>Whether a migration's destination here puts RAM behind the VM's fixed memory (all of it, or VMemDirect's share) before its pages arrive (HostAgentOptions.PreallocateIncomingMemory).</summary>
    public bool PreallocateIncoming { get; init; } = true;

    /// <summary>How an incoming migration's memory is preallocated; tests replace it to make this host refuse (a kernel cannot be made to).</summary>
    internal Func<IncomingMigration, CancellationToken, Task<bool>> Preallocate { get; set; } = (incoming, cancellationToken) => incoming.PreallocateAsync(cancellationToken);

    /// <summary>Directory for this agent's files (private swap files).</summary>
    public string DataDirectory { get; }

    /// <summary>Parts of VMs held here for other hosts (split sub-host, scatter-gather intermediate).</summary>
    public HeldParts Held { get; }

    /// <summary>What migrations left attached to this host's VMs (split main's pager, a gatherer).</summary>
    public VmAttachments Attachments { get; } = new();

    /// <summary>Stops and frees VM <paramref name="name"/> here and disposes what is attached to it (after its vCPUs stop, before its memory is unmapped: see <see cref="LocalHypervisor.BeforeUnmap"/>); returns the bytes its reservation freed.</summary>
    public Task<long> RemoveVmAsync(string name) => Hypervisor.RemoveAsync(name);

    /// <summary>Runs the migrations this host is the source of.</summary>
    public MigrationCoordinator Coordinator { get; internal set; } = null!;

    /// <summary>Gets the context from a grain's services.</summary>
    public static HostAgentContext Of(IServiceProvider services) =>
        (HostAgentContext?)services.GetService(typeof(HostAgentContext))
        ?? throw new InvalidOperationException("this silo has no HostAgentContext service (it is not a host agent).");
}
