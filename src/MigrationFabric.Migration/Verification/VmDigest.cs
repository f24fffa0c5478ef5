using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Integrity;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Migration.DataPlane;

namespace MigrationFabric.Migration.Verification;

/// <summary>The whole VM's digest, as <see cref="PageDigest.OfMemory"/>, awaiting a reader whose reads wait on the network (a split VM's sub-hosts) instead of blocking a thread.</summary>
public static class VmDigest
{
    /// <summary>The <paramref name="kind"/> page digests of <paramref name="memory"/> (non-resident pages read through <paramref name="reader"/>) digested in page order: equal to <see cref="PageDigest.OfMemory"/>.</summary>
    /// <remarks>A reader that is not an <see cref="IAsyncPageContentReader"/> (RAM, a local swap file) is used as PageDigest does, synchronously.</remarks>
    public static async Task<ulong> OfMemoryAsync(GuestMemory memory, IPageContentReader? reader, PageDigestKind kind = PageDigestKind.Xxh64, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(memory);
        if (reader is not IAsyncPageContentReader remote) return PageDigest.OfMemory(memory, reader, kind: kind);
        var vm = new Xxh64(0);
        var contents = new byte[Page.Size];
        for (long p = 0; p < memory.PageCount; p++)
        {
            var r = memory.GetResidency(p);
            if (r is PageResidency.Remote or PageResidency.Swapped)
            {
                await remote.ReadPageAsync(p, r, contents, cancellationToken).ConfigureAwait(false);
                vm.AppendUInt64(PageDigest.Hash(kind, contents));
            }
            else vm.AppendUInt64(PageDigest.Of(memory, p, kind: kind));
        }
        return vm.Digest();
    }
}
