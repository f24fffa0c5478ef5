using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Swap;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.PrivateMemory;
using MigrationFabric.Migration.Strategies;
using MigrationFabric.Migration.Tests.MultiHost;
using MigrationFabric.Migration.Tests.Support;

namespace MigrationFabric.Migration.Tests.PrivateMemory;

/// <summary>The naive baseline's device emulator: paged out by the host's swap while the VM arrives, paged in at the resume before the VM runs.</summary>
public class PagedDeviceEmulatorTests
{
    private const long Mib = 1 << 20;
    private const long VmBytes = 16 * Mib;
    private const long SharePages = 1024; // 4 MiB
    private const long EmulatorPages = 512; // 2 MiB
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Naive_pages_the_emulator_out_when_the_vm_fills_its_share_and_in_during_the_resume_before_the_vm_runs()
    {
        await using var source = await Agent.StartAsync();
        using var vm = new TestVm(VmBytes);
        vm.Fill(stride: 1);
        await using var host = await SmallHost.StartAsync(VmBytes, SharePages, PagingMode.Naive, EmulatorPages);
        var emulator = host.Destination.DeviceEmulator;
        Assert.NotNull(emulator);
        var resumedWithEmulatorIn = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        var incoming = host.Agent.Pages.Accept(host.Destination.Incoming("emu-1", "vm-1", new IncomingMigrationOptions
        {
            Resume = (_, _) =>
            {
                // The VM's own resume comes after the emulator's page-ins, and the VM is back to its share.
                resumedWithEmulatorIn.TrySetResult(!emulator.IsPagedOut && host.Pager.SharePages == SharePages);
                return Task.CompletedTask;
            },
        }));

        var report = await new VMemDirect(new VMemDirectOptions { Kind = VirtualizationKind.NaiveSwap })
            .RunAsync(new MigrationJob
            {
                MigrationId = "emu-1", Vm = "vm-1", Memory = vm.Memory, Mmu = vm.Mmu, Destination = host.Agent.Address,
                LocalPages = source.Pages, LocalAddress = source.Address,
            })
            .WaitAsync(Long);

        await incoming.Completion.WaitAsync(Long);
        Assert.True(await resumedWithEmulatorIn.Task.WaitAsync(Long), "the VM resumed before the emulator's pages were back or with the emulator's room");
        Assert.Equal(vm.Memory.PageCount, report.PagesVerified);
        Assert.Equal(vm.Digest(), host.Digest());
        var paging = emulator.Statistics.Snapshot();
        Assert.True(paging.PageOuts >= EmulatorPages, $"emulator page-outs {paging.PageOuts}");
        Assert.True(paging.PageIns >= EmulatorPages, $"emulator page-ins {paging.PageIns}");
        Assert.True(paging.Faults >= EmulatorPages / 8, $"emulator faults {paging.Faults}: one per readahead window at least");
        Assert.True(emulator.PageInTime > TimeSpan.Zero);
        await host.Pager.SettleAsync().WaitAsync(Long);
        Assert.True(host.Memory.ResidentPages <= SharePages, $"the VM holds {host.Memory.ResidentPages} pages, share {SharePages}");
    }

    [Fact]
    public async Task Vmem_direct_has_no_paged_emulator_and_a_negative_size_is_refused()
    {
        using var memory = new Memory.Guest.GuestMemory(VmBytes);
        await using (var d = new PrivateMemoryDestination(memory, SharePages, PagingMode.AsyncMethod1, null, EmulatorPages))
            Assert.Null(d.DeviceEmulator);
        Assert.Throws<ArgumentOutOfRangeException>(() => new PrivateMemoryDestination(memory, SharePages, PagingMode.Naive, null, -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new PagedDeviceEmulator(0));
    }

    [Fact]
    public async Task Emulator_pages_come_back_with_their_bytes_after_a_page_out()
    {
        await using var emulator = new PagedDeviceEmulator(EmulatorPages, new PrivateVirtualMemoryOptions { DirectIo = false });
        emulator.PageOut();
        Assert.True(emulator.IsPagedOut);
        Assert.True(emulator.Statistics.Snapshot().PageOuts >= EmulatorPages);
        // PageInAsync checks every page's bytes and throws on a mismatch.
        await emulator.PageInAsync(CancellationToken.None).WaitAsync(Long);
        Assert.False(emulator.IsPagedOut);
        Assert.True(emulator.Statistics.Snapshot().PageIns >= EmulatorPages);
    }
}
