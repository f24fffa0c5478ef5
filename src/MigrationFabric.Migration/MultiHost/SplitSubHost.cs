using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.RemotePaging;

namespace MigrationFabric.Migration.MultiHost;

/// <summary>A sub-host's side of a split migration: receives its part of the VM (migration id + <see cref="Suffix"/>) and from switch-over holds it for the main host (RemotePages/StorePages).</summary>
public static class SplitSubHost
{
    /// <summary>Appended to the split migration's id for the sub-host's own page streams.</summary>
    public const string Suffix = "/sub";

    /// <summary>Expects the sub-host part of split migration <paramref name="migrationId"/> of VM <paramref name="vm"/> into <paramref name="memory"/> (the VM's size; only the pages held here take RAM).</summary>
    /// <returns>The incoming migration; once it switches over, <paramref name="pages"/> holds the VM's pages (see <see cref="PagesService.Hold"/>).</returns>
    public static IncomingMigration Accept(PagesService pages, string migrationId, string vm, GuestMemory memory, IncomingMigrationOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(pages);
        options ??= new IncomingMigrationOptions();
        var resume = options.Resume;
        options.Resume = async (state, ct) =>
        {
            pages.Hold(new RemotePageStore(vm, memory));
            if (resume is not null) await resume(state, ct).ConfigureAwait(false);
        };
        // No vCPU ever runs here: the MMU only satisfies IncomingMigration.
        var mmu = new SoftwareMmu(memory);
        var incoming = new IncomingMigration(migrationId + Suffix, vm, memory, mmu, options);
        incoming.Completion.ContinueWith(_ => mmu.Dispose(), TaskScheduler.Default);
        return pages.Accept(incoming);
    }
}
