namespace MigrationFabric.Host.Tests;

using MigrationFabric.Contracts.V1;
using MigrationFabric.Host.Hypervisor;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Swap;

/// <summary>An over-committed LocalVm: guest memory behind a private virtual memory with a share and a private swap file.</summary>
public sealed class PrivateMemoryVmTests
{
    private static string NewDirectory()
    {
        var dir = Path.Combine(Path.GetTempPath(), $"mf-pvm-test-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        return dir;
    }

    [Fact]
    public async Task A_private_memory_vm_keeps_its_share_swaps_the_rest_and_deletes_its_swap_file()
    {
        var dir = NewDirectory();
        try
        {
            var swap = Path.Combine(dir, "pvm-1.swap");
            // 16 MiB VM, 4 MiB share: the memory benchmark sweeps all of it, so 3/4 must end in swap.
            var vm = new LocalVm("pvm-1", new Workload { Kind = WorkloadKind.MemoryBenchmark }, 16 << 20,
                privateMemory: new PrivateVirtualMemoryOptions { SharePages = 1024, SwapFilePath = swap, ChunkPages = 64 });
            await using (vm)
            {
                Assert.NotNull(vm.Pager);
                Assert.Equal(4L << 20, vm.ShareBytes);
                Assert.True(File.Exists(swap));
                vm.Start();
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                while (vm.SwappedBytes < 8L << 20)
                {
                    if (vm.Run.IsFaulted) await vm.Run;
                    await Task.Delay(20, timeout.Token);
                }
                // A page being installed counts before its vCPU reclaims room: a snapshot may be a few pages over, never a chunk.
                Assert.True(vm.ResidentBytes <= vm.ShareBytes + 64 * 4096, $"footprint {vm.ResidentBytes} above share {vm.ShareBytes}");
                Assert.True(vm.Pager!.Statistics.Snapshot().PageOuts > 0);
            }
            Assert.False(File.Exists(swap));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task A_vm_without_private_memory_has_no_pager_and_its_share_is_its_size()
    {
        await using var vm = new LocalVm("plain-1", new Workload { Kind = WorkloadKind.Idle }, 16 << 20);
        Assert.Null(vm.Pager);
        Assert.Equal(16L << 20, vm.ShareBytes);
        Assert.Equal(0, vm.SwappedBytes);
    }

    [Fact]
    public void Bad_private_memory_options_are_refused_naming_the_option()
    {
        var dir = NewDirectory();
        try
        {
            var e = Assert.Throws<ArgumentException>(() => new LocalVm("pvm-2", new Workload { Kind = WorkloadKind.Idle }, 16 << 20,
                privateMemory: new PrivateVirtualMemoryOptions { SharePages = 1024, ChunkPages = 0, SwapFilePath = Path.Combine(dir, "x.swap") }));
            Assert.Contains("ChunkPages", e.Message);
            e = Assert.Throws<ArgumentException>(() => new LocalVm("pvm-3", new Workload { Kind = WorkloadKind.Idle }, 16 << 20,
                faultHandler: new NoFaults(), privateMemory: new PrivateVirtualMemoryOptions { SharePages = 1024, SwapFilePath = Path.Combine(dir, "y.swap") }));
            Assert.Contains("fault handler", e.Message);
            Assert.Empty(Directory.GetFiles(dir));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private sealed class NoFaults : MigrationFabric.Memory.Mmu.IPageFaultHandler
    {
        public ValueTask ResolveAsync(MigrationFabric.Memory.Mmu.PageFault fault, CancellationToken cancellationToken) =>
            ValueTask.FromException(new InvalidOperationException($"unexpected fault on page {fault.Page.Value}"));
    }
}
