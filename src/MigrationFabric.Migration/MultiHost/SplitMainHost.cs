using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.RemotePaging;

namespace MigrationFabric.Migration.MultiHost;

/// <summary>A main host's side of a split migration: receives its part of the VM; at switch-over it takes the source's <see cref="MemoryMap"/>, every page it was not sent becomes Remote, and the MMU pages through a <see cref="RemotePager"/> to and from the sub-hosts the map names.</summary>
public sealed class SplitMainHost : IDisposable
{
    private readonly Uri? _expectedSubHost;
    private RemotePager? _pager;

    /// <summary>Prepares VM <paramref name="vm"/>'s main part in <paramref name="memory"/> (vCPUs on <paramref name="mmu"/>); the sub-hosts come with the source's memory map at switch-over.</summary>
    public SplitMainHost(string migrationId, string vm, GuestMemory memory, SoftwareMmu mmu, RemotePagerOptions pagerOptions, IncomingMigrationOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(memory);
        ArgumentNullException.ThrowIfNull(mmu);
        ArgumentNullException.ThrowIfNull(pagerOptions);
        // Checked now (against one sub-host) so a bad option fails before the migration, not at resume.
        pagerOptions.Validate(memory.PageCount, pagerOptions.SubHostBudgetPages?.Count ?? 1);
        options ??= new IncomingMigrationOptions();
        var resume = options.Resume;
        options.Resume = async (state, ct) =>
        {
            var (map, deviceState) = SplitSwitchOverState.Unwrap(state);
            if (_expectedSubHost is not null && (map.SubHosts.Count != 1 || map.SubHosts[0].Authority != _expectedSubHost.Authority))
                throw new InvalidOperationException($"VM {vm}'s main host expected sub-host {_expectedSubHost}, but the source split it over {string.Join(", ", map.SubHosts)}.");
            // Adopting the memory makes every page not sent here Remote; the map says who serves each.
            var pager = new RemotePager(vm, memory, map, pagerOptions);
            Volatile.Write(ref _pager, pager);
            mmu.FaultHandler = pager;
            if (resume is not null) await resume(deviceState, ct).ConfigureAwait(false);
        };
        Incoming = new IncomingMigration(migrationId, vm, memory, mmu, options);
    }

    /// <summary>As the other constructor, and the source must have split the VM over exactly sub-host <paramref name="subHost"/>.</summary>
    public SplitMainHost(string migrationId, string vm, GuestMemory memory, SoftwareMmu mmu, Uri subHost, RemotePagerOptions pagerOptions, IncomingMigrationOptions? options = null)
        : this(migrationId, vm, memory, mmu, pagerOptions, options)
    {
        ArgumentNullException.ThrowIfNull(subHost);
        _expectedSubHost = subHost;
    }

    /// <summary>The incoming migration to accept on the main host's PagesService.</summary>
    public IncomingMigration Incoming { get; }

    /// <summary>Whether the VM resumed here (the pager exists).</summary>
    public bool IsResumed => Volatile.Read(ref _pager) is not null;

    /// <summary>Pages to and from the sub-hosts once the VM runs here; its <see cref="RemotePager.Map"/> is the VM's memory map.</summary>
    /// <exception cref="InvalidOperationException">The VM has not resumed here yet.</exception>
    public RemotePager Pager => Volatile.Read(ref _pager) ?? throw new InvalidOperationException("the remote pager exists once the VM resumed at the main host (switch-over).");

    /// <summary>Disposes the pager once no page-in or page-out is in flight: a fault the stopped vCPUs gave up on may still be installing into the memory its owner unmaps next.</summary>
    public void Dispose()
    {
        // Returns once no paging is in flight and none can start (RemotePager.Dispose, which may be called more than once).
        Volatile.Read(ref _pager)?.Dispose();
    }
}
