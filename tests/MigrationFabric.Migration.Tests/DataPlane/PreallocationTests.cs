using MigrationFabric.Memory.Pages;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.Tests.Support;

namespace MigrationFabric.Migration.Tests.DataPlane;

/// <summary>IncomingMigration.PreallocateAsync: RAM behind the destination before the pages come, and when it is refused or stopped.</summary>
public class PreallocationTests
{
    private const long Mib = 1 << 20;

    [Fact]
    public async Task Preallocating_leaves_every_page_zero_and_untouched_in_residency_and_marks_the_migration()
    {
        using var target = new TestVm(16 * Mib);
        var incoming = new IncomingMigration("pa-1", "vm", target.Memory, target.Mmu);
        Assert.False(incoming.IsPreallocated);
        var spans = new System.Collections.Concurrent.ConcurrentQueue<System.Diagnostics.Activity>();
        using var listener = new System.Diagnostics.ActivityListener
        {
            ShouldListenTo = s => s.Name == MigrationFabric.Migration.Telemetry.MigrationTelemetry.Name,
            Sample = (ref System.Diagnostics.ActivityCreationOptions<System.Diagnostics.ActivityContext> _) => System.Diagnostics.ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Enqueue,
        };
        System.Diagnostics.ActivitySource.AddActivityListener(listener);

        bool done = await incoming.PreallocateAsync(CancellationToken.None);

        // Traced like every other step of a migration (other tests' spans may be in the queue too).
        var span = Assert.Single(spans, a => a.DisplayName == "migration preallocate" && (string?)a.GetTagItem("migration.id") == "pa-1");
        Assert.Equal(16 * Mib, span.GetTagItem("bytes"));
        Assert.Equal(done, span.GetTagItem("preallocated"));

        Assert.True(done || !OperatingSystem.IsLinux(), "MADV_POPULATE_WRITE refused by this kernel");
        Assert.Equal(done, incoming.IsPreallocated);
        Assert.True(incoming.Preallocation > TimeSpan.Zero);
        Assert.Equal(target.Memory.PageCount, target.Memory.CountOf(PageResidency.Zero));
        Assert.Equal(0, target.Memory.ResidentPages);
        Assert.True(target.Memory.GetRangeBytes(0, (int)target.Memory.PageCount).IndexOfAnyExcept((byte)0) < 0);
        Assert.Equal(IncomingPhase.Receiving, incoming.Phase);
    }

    [Fact]
    public async Task Memory_placed_elsewhere_preallocates_what_its_placement_holds_and_no_page_of_the_vm()
    {
        using var target = new TestVm(4 * Mib);
        var incoming = new IncomingMigration("pa-2", "vm", target.Memory, target.Mmu, new IncomingMigrationOptions { Placement = new NowherePlacement() });
        Assert.False(await incoming.PreallocateAsync(CancellationToken.None));
        Assert.False(incoming.IsPreallocated);
        Assert.True(incoming.Preallocation > TimeSpan.Zero);
        Assert.Equal(target.Memory.PageCount, target.Memory.CountOf(PageResidency.Zero));
    }

    [Fact]
    public async Task A_cancelled_preallocation_stops_and_the_stream_populates_as_before()
    {
        using var target = new TestVm(4 * Mib);
        var incoming = new IncomingMigration("pa-3", "vm", target.Memory, target.Mmu);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => incoming.PreallocateAsync(new CancellationToken(canceled: true)));
        Assert.False(incoming.IsPreallocated);
        Assert.Equal(TimeSpan.Zero, incoming.Preallocation);
    }

    private sealed class NowherePlacement : IPagePlacement
    {
        public void Place(long page, ReadOnlySpan<byte> contents) { }
    }
}
