namespace MigrationFabric.Host.Tests;

using MigrationFabric.Contracts.V1;
using MigrationFabric.Host.Hypervisor;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.Strategies;
using MigrationFabric.Rpc.Server;
using KeyValueStoreWorkload = MigrationFabric.Memory.Workloads.KeyValueStoreWorkload;

/// <summary>Switch-over carries the VM's vCPU state: the guest program continues at the destination instead of restarting.</summary>
public sealed class DeviceStateTests(TestCluster cluster) : IClassFixture<TestCluster>
{
    [Theory]
    [InlineData(Strategy.PreCopy)]
    [InlineData(Strategy.PostCopy)]
    public async Task A_key_value_store_keeps_its_key_versions_across_a_migration(Strategy strategy)
    {
        string vm = $"ds-kv-{strategy}".ToLowerInvariant();
        await cluster.CreateVm(vm, "host-a", 64UL << 20, new Workload { Kind = WorkloadKind.KeyValue, SetPercent = 30, Vcpus = 2 });
        var local = cluster.Cluster.Agent("host-a").Hypervisor.Find(vm)!;
        var source = Assert.IsType<KeyValueStoreWorkload>(local.Workload);
        await Until(() => source.Sets > 20_000, $"{vm}: SETs at the source");

        var m = await cluster.Start(vm, "host-b", strategy, new MigrationLimits { Deadline = Google.Protobuf.WellKnownTypes.Duration.FromTimeSpan(TimeSpan.FromSeconds(60)) });
        var final = (await cluster.Watch(m.Id))[^1].Final;
        Assert.True(final.Phase == MigrationPhase.Completed, $"{strategy}: {final.Phase} {final.Error}");

        var dest = Assert.IsType<KeyValueStoreWorkload>(cluster.Cluster.Agent("host-b").Hypervisor.Find(vm)!.Workload);
        Assert.True(dest.IsRestored);
        // The source stopped at switch-over, so its counters and versions are final; the destination redoes at most one operation per vCPU.
        long sourceSets = source.Sets, sourceGets = source.Gets;
        Assert.InRange(dest.Sets, sourceSets - 2, long.MaxValue);
        int movedOn = 0;
        for (int v = 0; v < 2; v++)
        {
            ulong[] before = source.VersionsOf(v), after = dest.VersionsOf(v);
            Assert.Equal(before.Length, after.Length);
            for (int k = 0; k < before.Length; k++)
            {
                // A restarted store would have preloaded every key at version 1 again.
                Assert.True(after[k] + 1 >= before[k], $"vCPU {v} key {k}: version {after[k]} at the destination, {before[k]} at the source");
                if (before[k] > 2) movedOn++;
            }
        }
        Assert.True(movedOn > 0, "no key had been SET more than twice at the source: the test proves nothing");

        await Until(() => dest.Gets > sourceGets + 20_000 && dest.Sets > sourceSets + 5_000, $"{vm}: GETs and SETs at the destination");
        Assert.Equal(0, dest.CorruptReads);
        Assert.Null(dest.FirstCorruption);
        Assert.Equal(0, dest.Misses);
        Assert.Equal(0, source.CorruptReads);
        await cluster.Call(Api.FabricContract.DeleteVm, new DeleteVmRequest { Name = vm });
    }

    [Fact]
    public async Task A_vm_that_never_started_has_no_state_and_starts_fresh_while_a_bad_state_is_refused()
    {
        var spec = new Workload { Kind = WorkloadKind.KeyValue };
        var neverStarted = new LocalVm("ds-never", spec, 16 << 20);
        await using (neverStarted)
        {
            neverStarted.Mmu.Pause();
            Assert.True(neverStarted.CaptureDeviceState().IsEmpty);
        }

        // Empty state: the source never ran a program, so the destination starts one from the beginning (with its preload).
        var fresh = new LocalVm("ds-fresh", spec, 16 << 20);
        await using (fresh)
        {
            fresh.Resume(ReadOnlyMemory<byte>.Empty);
            var kv = Assert.IsType<KeyValueStoreWorkload>(fresh.Workload);
            Assert.False(kv.IsRestored);
            await Until(() => kv.Gets > 1000, "GETs of a fresh store");
            Assert.Equal(kv.VersionsOf(0).Length, kv.Preloaded);
        }

        var running = new LocalVm("ds-running", spec, 16 << 20);
        await using (running)
        {
            running.Start();
            var kv = (KeyValueStoreWorkload)running.Workload!;
            await Until(() => kv.Sets > 100, "SETs");
            Assert.Contains("paused", Assert.Throws<InvalidOperationException>(() => running.CaptureDeviceState()).Message);
            running.Mmu.Pause();
            var state = running.CaptureDeviceState().ToArray();

            var garbled = (byte[])state.Clone();
            garbled[^20] ^= 1;
            await using var target = new LocalVm("ds-target", spec, 16 << 20);
            var e = Assert.Throws<ArgumentException>(() => target.Resume(garbled));
            Assert.Contains("device_state does not fit its workload", e.Message);
            Assert.Contains("checksum", e.Message);
            Assert.Null(target.Workload);
            await using var otherKind = new LocalVm("ds-other", new Workload { Kind = WorkloadKind.HotSet }, 16 << 20);
            Assert.Contains("is for workload 'kv', this workload is 'hotset'", Assert.Throws<ArgumentException>(() => otherKind.Resume(state)).Message);

            // The same blob resumes a VM whose memory holds the source's pages: the program continues.
            await using var twin = new LocalVm("ds-twin", spec, 16 << 20);
            for (long p = 0; p < running.Memory.PageCount; p++)
                if (running.Memory.GetResidency(p) == PageResidency.Resident)
                    Assert.True(twin.Memory.TryInstall(p, PageResidency.Zero, running.Memory.GetPageBytes(p)));
            twin.Resume(state);
            var continued = Assert.IsType<KeyValueStoreWorkload>(twin.Workload);
            long sets = continued.Sets;
            Assert.True(sets >= kv.Sets - 1);
            await Until(() => continued.Sets > sets + 1000, "SETs after the resume");
            Assert.Equal(0, continued.CorruptReads);
            Assert.Equal(0, continued.Misses);
        }
    }

    [Fact]
    public async Task A_refused_device_state_fails_the_switch_over_and_the_vm_keeps_running_at_its_source()
    {
        var pages = new PagesService();
        await using var server = new RpcServer(new RpcServerOptions { Port = 0 });
        server.AddService(pages.Definition);
        await server.StartAsync();
        var spec = new Workload { Kind = WorkloadKind.KeyValue };
        await using var source = new LocalVm("ds-refused", spec, 16 << 20);
        await using var target = new LocalVm("ds-refused", spec, 16 << 20);
        var incoming = pages.Accept(new IncomingMigration("mig-ds-refused", "ds-refused", target.Memory, target.Mmu, new IncomingMigrationOptions
        {
            Resume = (state, _) =>
            {
                target.Resume(state);
                return Task.CompletedTask;
            },
        }));
        source.Start();
        var kv = (KeyValueStoreWorkload)source.Workload!;
        await Until(() => kv.Sets > 100, "SETs at the source");
        var job = new MigrationJob
        {
            MigrationId = "mig-ds-refused",
            Vm = "ds-refused",
            Memory = source.Memory,
            Mmu = source.Mmu,
            Destination = server.Address,
            // What a source of an incompatible build, or a bit flipped on the way, would send.
            CaptureDeviceState = () =>
            {
                var state = source.CaptureDeviceState().ToArray();
                state[^20] ^= 1;
                return state;
            },
        };
        var e = await Assert.ThrowsAsync<MigrationFailedException>(() => new PreCopy().RunAsync(job).WaitAsync(TestCluster.Patience));
        Assert.Contains("InvalidArgument", e.Message);
        Assert.Contains("device_state does not fit its workload", e.Message);
        Assert.Contains("checksum", e.Message);
        // Rolled back: the source runs on with its checks intact; the destination failed its side and started nothing.
        Assert.False(source.IsPaused);
        long gets = kv.Gets;
        await Until(() => kv.Gets > gets + 1000, "GETs at the source after the rollback");
        Assert.Equal(0, kv.CorruptReads);
        var aborted = await Assert.ThrowsAsync<MigrationAbortedException>(() => incoming.Completion.WaitAsync(TestCluster.Patience));
        Assert.Contains("could not resume at the destination", aborted.Message);
        Assert.Null(target.Workload);
        Assert.Equal(0, target.Memory.ResidentPages);
    }

    private static async Task Until(Func<bool> condition, string what)
    {
        var until = DateTime.UtcNow + TestCluster.Patience;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < until, $"timed out waiting for {what}");
            await Task.Delay(10);
        }
    }
}
