namespace MigrationFabric.Host.Tests;

using MigrationFabric.Contracts.V1;
using MigrationFabric.Host.Agent;
using MigrationFabric.Host.Hypervisor;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Rpc;

/// <summary>What a migration attached to a VM (a split main's pager, a gatherer) lets go of its memory after the vCPUs stop and before the memory is unmapped, however the VM leaves.</summary>
public sealed class VmRemovalTests : IDisposable
{
    private const long MiB = 1L << 20;
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(30);
    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"mf-removal-test-{Guid.NewGuid():N}");

    public VmRemovalTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Removing_a_vm_detaches_an_install_in_flight_after_the_vcpus_stop_and_before_the_memory_is_unmapped()
    {
        var hypervisor = new LocalHypervisor("host-removal", 64 * MiB);
        var context = new HostAgentContext("host-removal", hypervisor, new PagesService(), _dir);
        var vm = hypervisor.Admit("vm-1", 8 * MiB, new Workload { Kind = WorkloadKind.Idle }, StatusCode.FailedPrecondition);
        vm.Start();
        using var installer = new InstallInFlight(vm);
        context.Attachments.Attach(vm, installer);
        await installer.Claimed.WaitAsync(Long);
        Assert.False(vm.Run.IsCompleted, "the vCPUs run before the removal");

        long freed = await context.RemoveVmAsync("vm-1").WaitAsync(Long);

        Assert.Equal(8 * MiB, freed);
        Assert.True(installer.Disposed, "the attachment was disposed");
        Assert.True(installer.VcpusStoppedAtDispose, "the vCPUs had stopped when the attachment was disposed");
        Assert.True(installer.MappedAtDispose, "the memory was still mapped when the attachment was disposed");
        Assert.True(installer.Installed, "the install in flight finished into mapped memory");
        Assert.Throws<ObjectDisposedException>(() => vm.Memory.GetPageBytes(installer.Page));
        Assert.Null(hypervisor.Find("vm-1"));
    }

    [Fact]
    public async Task An_agent_stopping_its_hypervisor_detaches_before_unmapping_too()
    {
        var hypervisor = new LocalHypervisor("host-removal-2", 64 * MiB);
        var context = new HostAgentContext("host-removal-2", hypervisor, new PagesService(), _dir);
        var vm = hypervisor.Admit("vm-2", 8 * MiB, new Workload { Kind = WorkloadKind.Idle }, StatusCode.FailedPrecondition);
        vm.Start();
        using var installer = new InstallInFlight(vm);
        context.Attachments.Attach(vm, installer);
        await installer.Claimed.WaitAsync(Long);

        await hypervisor.DisposeAsync().AsTask().WaitAsync(Long);

        Assert.True(installer.VcpusStoppedAtDispose && installer.MappedAtDispose && installer.Installed,
            $"stopped {installer.VcpusStoppedAtDispose}, mapped {installer.MappedAtDispose}, installed {installer.Installed}");
    }

    /// <summary>An attachment installing a page on a thread of its own, as a remote fault's reply or a gather batch does: it claimed the page, holds its bytes, and writes them when told to finish (its Dispose waits for that, as the real ones do).</summary>
    private sealed class InstallInFlight : IDisposable
    {
        private readonly LocalVm _vm;
        private readonly TaskCompletionSource _claimed = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly ManualResetEventSlim _finish = new();
        private readonly Thread _thread;
        private volatile bool _write;

        public InstallInFlight(LocalVm vm)
        {
            _vm = vm;
            Page = vm.Memory.PageCount - 1;
            _thread = new Thread(Install) { IsBackground = true, Name = "install in flight" };
            _thread.Start();
        }

        public long Page { get; }

        public Task Claimed => _claimed.Task;

        public bool Disposed { get; private set; }

        public bool VcpusStoppedAtDispose { get; private set; }

        public bool MappedAtDispose { get; private set; }

        public bool Installed { get; private set; }

        private void Install()
        {
            var target = _vm.Memory.BeginInstall(Page, PageResidency.Zero);
            if (target.IsEmpty)
            {
                _claimed.TrySetException(new InvalidOperationException($"page {Page} was not Zero"));
                return;
            }
            _claimed.TrySetResult();
            _finish.Wait();
            // Writing after an unmap would crash the test host (and so would AbortInstall, which discards the bytes): it only
            // touches the memory where Dispose found it mapped.
            if (!_write) return;
            target.Fill(0x5A);
            _vm.Memory.CompleteInstall(Page, PageResidency.Zero);
            Installed = true;
        }

        public void Dispose()
        {
            if (Disposed) return;
            Disposed = true;
            VcpusStoppedAtDispose = _vm.Run.IsCompleted;
            try
            {
                MappedAtDispose = _vm.Memory.GetPageBytes(0).Length == MigrationFabric.Memory.Pages.Page.Size;
            }
            catch (ObjectDisposedException)
            {
                MappedAtDispose = false;
            }
            _write = MappedAtDispose;
            _finish.Set();
            _thread.Join();
        }
    }
}
