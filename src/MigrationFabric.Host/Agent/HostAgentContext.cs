namespace MigrationFabric.Host.Agent;

using MigrationFabric.Host.Hypervisor;
using MigrationFabric.Host.Migrations;
using MigrationFabric.Migration.DataPlane;

/// <summary>What this agent's grains reach locally: the host's name and endpoint, its hypervisor, data plane and migration coordinator.</summary>
public sealed class HostAgentContext(string hostName, LocalHypervisor hypervisor, PagesService pages)
{
    /// <summary>The host's name.</summary>
    public string HostName { get; } = hostName;

    /// <summary>The scheduler API / data-plane endpoint (set once the server listens).</summary>
    public string Endpoint { get; internal set; } = "";

    /// <summary>This host's VMs and budget.</summary>
    public LocalHypervisor Hypervisor { get; } = hypervisor;

    /// <summary>This host's data plane.</summary>
    public PagesService Pages { get; } = pages;

    /// <summary>Runs the migrations this host is the source of.</summary>
    public MigrationCoordinator Coordinator { get; internal set; } = null!;

    /// <summary>Gets the context from a grain's services.</summary>
    public static HostAgentContext Of(IServiceProvider services) =>
        (HostAgentContext?)services.GetService(typeof(HostAgentContext))
        ?? throw new InvalidOperationException("this silo has no HostAgentContext service (it is not a host agent).");
}
