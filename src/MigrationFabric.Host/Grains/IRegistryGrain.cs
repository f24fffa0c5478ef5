using MigrationFabric.Grains;

namespace MigrationFabric.Host.Grains;

/// <summary>The key of the cluster's one registry grain.</summary>
public static class RegistryKey
{
    /// <summary>The key.</summary>
    public const string Value = "cluster";
}

/// <summary>The cluster's name registry (one grain, key <see cref="RegistryKey.Value"/>): which host runs each VM, and every migration's id.</summary>
public interface IRegistryGrain : IGrainWithStringKey
{
    /// <summary>Claims a new VM name on a host (ALREADY_EXISTS when taken).</summary>
    Task Claim(string vm, string host);

    /// <summary>Forgets a VM.</summary>
    Task Release(string vm);

    /// <summary>Records that a VM now runs on <paramref name="host"/>.</summary>
    Task Move(string vm, string host);

    /// <summary>The host running a VM, or empty when unknown.</summary>
    Task<string> HostOf(string vm);

    /// <summary>Every VM with its host, ordered by name.</summary>
    Task<RegistryEntry[]> ListVms();

    /// <summary>Records a migration of <paramref name="vm"/>.</summary>
    Task AddMigration(string migrationId, string vm);

    /// <summary>Migration ids, newest first, optionally of one VM only.</summary>
    Task<string[]> ListMigrations(string vm);
}

/// <summary>A VM and its host.</summary>
public sealed record RegistryEntry(string Vm, string Host);

/// <summary>What the registry persists.</summary>
public sealed class RegistryState
{
    /// <summary>VM name to host name.</summary>
    public Dictionary<string, string> Vms { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Migrations in start order: (id, vm).</summary>
    public List<RegistryEntry> Migrations { get; set; } = [];
}
