using MigrationFabric.Memory.Integrity;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Workloads;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.Strategies;
using MigrationFabric.Migration.Tests.Support;

namespace MigrationFabric.Migration.Tests.Strategies;

/// <summary>Both checksum kinds end to end: the streams, the post-copy fault replies and the integrity check agree on the one the options name.</summary>
public class ChecksumKindStrategyTests
{
    private const long Mib = 1 << 20;
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(60);

    [Fact]
    public void Options_default_to_xxh3_and_refuse_an_unknown_checksum_by_name()
    {
        Assert.Equal(PageDigestKind.Xxh3, new PreCopyOptions().Checksum);
        var e = Assert.Throws<ArgumentException>(() => new PreCopyOptions { Checksum = (PageDigestKind)7 }.Validate());
        Assert.Contains("Checksum", e.Message);
    }

    [Theory]
    [InlineData(PageDigestKind.Xxh64)]
    [InlineData(PageDigestKind.Xxh3)]
    public async Task Pre_copy_verifies_every_page_in_the_kind_the_options_name(PageDigestKind kind)
    {
        await using var pair = await MigrationPair.CreateAsync(16 * Mib);
        pair.Vm.Fill(stride: 2);
        ulong digest = pair.Vm.Digest();
        var incoming = pair.Accept();

        var report = await new PreCopy(new PreCopyOptions { Checksum = kind, Streams = 2 }).RunAsync(pair.Job()).WaitAsync(Long);

        await incoming.Completion.WaitAsync(Long);
        Assert.Equal(IncomingPhase.Completed, incoming.Phase);
        Assert.Equal(kind, incoming.Checksum);
        Assert.Equal(pair.Vm.Memory.PageCount, report.PagesVerified);
        Assert.Equal(digest, pair.Target.Digest());
    }

    [Theory]
    [InlineData(PageDigestKind.Xxh64)]
    [InlineData(PageDigestKind.Xxh3)]
    public async Task Post_copy_fault_replies_and_the_push_use_the_migrations_kind(PageDigestKind kind)
    {
        await using var pair = await MigrationPair.CreateAsync(16 * Mib);
        pair.Vm.Fill(stride: 1);
        // The destination's guest touches pages at once: remote faults, answered in the migration's kind.
        var incoming = pair.Accept((_, _) =>
        {
            pair.Target.Start(new HotSetWorkload(new HotSetOptions { WorkingSetFraction = 0.5, TargetDirtyPagesPerSecond = 0, Seed = 3 }));
            return Task.CompletedTask;
        });

        var report = await new PostCopy(new PostCopyOptions { Checksum = kind, BandwidthCap = 16 * Mib, Prefetch = 4 }).RunAsync(pair.Job()).WaitAsync(Long);

        await incoming.Completion.WaitAsync(Long);
        await pair.Target.StopWorkloadAsync();
        Assert.Equal(IncomingPhase.Completed, incoming.Phase);
        Assert.Equal(kind, incoming.Checksum);
        Assert.True(report.RemoteFaults > 0, "the destination workload faulted pages in");
        Assert.Equal(pair.Vm.Memory.PageCount, report.PagesVerified);
        Assert.Equal(0, pair.Target.Memory.CountOf(PageResidency.Remote));
    }
}
