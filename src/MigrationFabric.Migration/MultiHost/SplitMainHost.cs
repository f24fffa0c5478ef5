using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.RemotePaging;

namespace MigrationFabric.Migration.MultiHost;

/// <summary>A main host's side of a split migration: receives its part of the VM; at switch-over every page it was not sent becomes Remote (held by the sub-host) and the MMU pages through a <see cref="RemotePager"/>.</summary>
public sealed class SplitMainHost : IDisposable
{
    /// <summary>Prepares VM <paramref name="vm"/>'s main part in <paramref name="memory"/> (vCPUs on <paramref name="mmu"/>) with its sub-host at <paramref name="subHost"/>.</summary>
    public SplitMainHost(string migrationId, string vm, GuestMemory memory, SoftwareMmu mmu, Uri subHost, RemotePagerOptions pagerOptions, IncomingMigrationOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(mmu);
        Pager = new RemotePager(vm, memory, subHost, pagerOptions);
        options ??= new IncomingMigrationOptions();
        var resume = options.Resume;
        options.Resume = async (state, ct) =>
        {
            // Pages never sent here (zero or on the sub-host) are the sub-host's to serve: it answers zeroes for the former.
            memory.TryTransitionRange(0, memory.PageCount, PageResidency.Zero, PageResidency.Remote);
            mmu.FaultHandler = Pager;
            if (resume is not null) await resume(state, ct).ConfigureAwait(false);
        };
        Incoming = new IncomingMigration(migrationId, vm, memory, mmu, options);
    }

    /// <summary>The incoming migration to accept on the main host's PagesService.</summary>
    public IncomingMigration Incoming { get; }

    /// <summary>Pages to and from the sub-host once the VM runs here.</summary>
    public RemotePager Pager { get; }

    /// <inheritdoc/>
    public void Dispose() => Pager.Dispose();
}
