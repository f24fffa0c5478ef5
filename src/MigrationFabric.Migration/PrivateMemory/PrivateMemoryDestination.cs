using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Swap;
using MigrationFabric.Migration.DataPlane;

namespace MigrationFabric.Migration.PrivateMemory;

/// <summary>A destination host whose budget is below the VM's size: the VM's guest memory with private virtual memory (fixed share, private swap file) attached before any page arrives.</summary>
/// <remarks>
/// The device state travels in the switch-over call and stays outside the private memory, so resuming pages
/// nothing in for it. Disposing stops the pager and deletes the swap file; the guest memory and MMU are the caller's.
/// </remarks>
public sealed class PrivateMemoryDestination : IAsyncDisposable
{
    /// <summary>Attaches private virtual memory with a share of <paramref name="sharePages"/> pages and <paramref name="mode"/> paging to <paramref name="memory"/> (fresh: every page Zero), and an MMU that faults swapped pages in through it.</summary>
    /// <param name="memory">The VM's fresh guest memory here.</param>
    /// <param name="sharePages">The VM's physical share.</param>
    /// <param name="mode">The paging mode (<see cref="PagingMode.Naive"/>: the naive baseline, plain OS swap).</param>
    /// <param name="options">Pager options (share and mode are set from the arguments).</param>
    /// <param name="deviceEmulatorPages">Naive only: the device emulator's memory, which the host's swap pages out when the VM fills
    /// the share and the resume pages back in before the VM runs (seed 004's extra naive downtime); 0: not modelled. Ignored by
    /// VMemDirect, whose emulator runs outside the private memory.</param>
    public PrivateMemoryDestination(GuestMemory memory, long sharePages, PagingMode mode, PrivateVirtualMemoryOptions? options = null, long deviceEmulatorPages = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(deviceEmulatorPages);
        ArgumentNullException.ThrowIfNull(memory);
        if (sharePages <= 0 || sharePages > memory.PageCount)
            throw new ArgumentOutOfRangeException(nameof(sharePages), sharePages, $"the destination's share must be within 1..{memory.PageCount} pages (the VM's size).");
        options ??= new PrivateVirtualMemoryOptions();
        options.SharePages = sharePages;
        options.Mode = mode;
        Memory = memory;
        Pager = new PrivateVirtualMemory(memory, options);
        Mmu = new SoftwareMmu(memory, Pager);
        if (mode == PagingMode.Naive && deviceEmulatorPages > 0)
            DeviceEmulator = new PagedDeviceEmulator(deviceEmulatorPages, options);
        Placement = new PrivateMemoryPlacement(Pager, DeviceEmulator);
    }

    /// <summary>Naive with a modelled device emulator: the emulator sharing the host's swap, else null.</summary>
    public PagedDeviceEmulator? DeviceEmulator { get; }

    /// <summary>The VM's guest memory at the destination.</summary>
    public GuestMemory Memory { get; }

    /// <summary>The private virtual memory.</summary>
    public PrivateVirtualMemory Pager { get; }

    /// <summary>The MMU the VM's vCPUs run on here (its fault handler is the pager).</summary>
    public SoftwareMmu Mmu { get; }

    /// <summary>The placement arriving pages go through.</summary>
    public PrivateMemoryPlacement Placement { get; }

    /// <summary>Incoming-migration options that place pages through <see cref="Placement"/> (other settings taken from <paramref name="template"/>).</summary>
    public IncomingMigrationOptions IncomingOptions(IncomingMigrationOptions? template = null)
    {
        var o = template ?? new IncomingMigrationOptions();
        o.Placement = Placement;
        var resume = o.Resume;
        o.Resume = async (state, ct) =>
        {
            if (DeviceEmulator is { IsPagedOut: true } emulator)
            {
                // The emulator runs before the VM: the host takes its pages back from the VM (page-outs) and the emulator
                // faults its own in, all in the downtime.
                Pager.SetSharePages(Pager.SharePages - emulator.Pages);
                await Pager.SettleAsync(ct).ConfigureAwait(false);
                await emulator.PageInAsync(ct).ConfigureAwait(false);
            }
            if (resume is not null) await resume(state, ct).ConfigureAwait(false);
            // Every page is placed: write out the swap pages still gathered in staging buffers, off the downtime
            // (a vCPU faulting on one of them meanwhile writes its chunk out itself before paging it in).
            _ = Task.Run(FlushPlacements, CancellationToken.None);
        };
        return o;
    }

    /// <summary>An incoming migration of VM <paramref name="vm"/> into this private memory.</summary>
    public IncomingMigration Incoming(string migrationId, string vm, IncomingMigrationOptions? template = null) =>
        new(migrationId, vm, Memory, Mmu, IncomingOptions(template));

    private void FlushPlacements()
    {
        try
        {
            Pager.FlushPlacements();
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException)
        {
            // The pages stay in their staging buffers and are still served from there; a later page-in retries the write.
        }
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        Mmu.Dispose();
        Placement.Dispose();
        await Pager.DisposeAsync().ConfigureAwait(false);
        if (DeviceEmulator is not null) await DeviceEmulator.DisposeAsync().ConfigureAwait(false);
    }
}
