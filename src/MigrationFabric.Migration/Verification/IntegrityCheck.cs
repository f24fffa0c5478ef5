using MigrationFabric.Contracts.V1;
using MigrationFabric.Memory.Integrity;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.Reporting;
using MigrationFabric.Migration.Strategies;
using MigrationFabric.Migration.Telemetry;
using MigrationFabric.Rpc;
using MigrationFabric.Rpc.Client;

namespace MigrationFabric.Migration.Verification;

/// <summary>After switch-over: every page's digest at the source (paused, so frozen at switch-over) against what the destination installed.</summary>
internal static class IntegrityCheck
{
    /// <summary>Pages per VerifyPages call (512 KiB of digests).</summary>
    public const int ChunkPages = 65536;

    /// <summary>The source's <paramref name="kind"/> digest of <paramref name="page"/>; with a page reader every non-zero page is read through it.</summary>
    /// <remarks>A pager's page-out can still complete while the VM is paused: hashing RAM it is discarding would digest zeroes, and the reader holds the page still.
    /// The kind is the migration's (its streams' checksum): the destination's digests are the checksums that arrived.</remarks>
    internal static ulong SourceDigest(MigrationJob job, long page, PageDigestKind kind)
    {
        if (job.PageReader is not { } reader) return PageDigest.Of(job.Memory, page, kind: kind);
        var residency = job.Memory.GetResidency(page);
        if (residency is PageResidency.Zero or PageResidency.Ballooned) return PageDigest.ZeroPageOf(kind);
        Span<byte> contents = stackalloc byte[Page.Size];
        reader.ReadPage(page, residency, contents);
        return PageDigest.Hash(kind, contents);
    }

    /// <summary>Adds the source's digests of pages [<paramref name="first"/>, first + <paramref name="count"/>) to <paramref name="request"/> (0 where <paramref name="holds"/> says no).</summary>
    /// <remarks>A reader that waits on the network (a split VM's sub-hosts) is awaited; every other source is hashed in a plain loop.</remarks>
    private static async ValueTask AddDigestsAsync(MigrationJob job, VerifyPagesRequest request, long first, int count, PageDigestKind kind, Func<long, bool>? holds,
        CancellationToken cancellationToken)
    {
        if (job.PageReader is not IAsyncPageContentReader remote)
        {
            for (int i = 0; i < count; i++) request.Digests.Add(holds is null || holds(first + i) ? SourceDigest(job, first + i, kind) : 0);
            return;
        }
        var contents = new byte[Page.Size];
        for (int i = 0; i < count; i++)
        {
            long page = first + i;
            if (holds is not null && !holds(page)) { request.Digests.Add(0); continue; }
            var residency = job.Memory.GetResidency(page);
            if (residency is PageResidency.Zero or PageResidency.Ballooned) { request.Digests.Add(PageDigest.ZeroPageOf(kind)); continue; }
            await remote.ReadPageAsync(page, residency, contents, cancellationToken).ConfigureAwait(false);
            request.Digests.Add(PageDigest.Hash(kind, contents));
        }
    }

    /// <summary>Mismatches at one holder of part of the VM (a split sub-host, a scatter intermediate), checked for the pages <paramref name="holds"/> names.</summary>
    /// <remarks>0 stands for "not given to this holder": never a real digest's place, as its table holds 0 there too.</remarks>
    internal static async Task<long> MismatchedAtHolderAsync(MigrationJob job, PageDigestKind kind, RpcChannel channel, string migrationId, Func<long, bool> holds,
        CancellationToken cancellationToken)
    {
        var memory = job.Memory;
        long mismatched = 0;
        for (long first = 0; first < memory.PageCount; first += ChunkPages)
        {
            int count = (int)Math.Min(ChunkPages, memory.PageCount - first);
            var request = new VerifyPagesRequest { MigrationId = migrationId, FirstPage = (ulong)first, Last = first + count >= memory.PageCount, Checksum = Codec.PageChecksums.ToWire(kind) };
            request.Digests.Capacity = count;
            await AddDigestsAsync(job, request, first, count, kind, holds, cancellationToken).ConfigureAwait(false);
            var response = await channel.AsyncUnaryCall(PagesContract.VerifyPages, request, new CallOptions(CancellationToken: cancellationToken))
                .ResponseAsync.ConfigureAwait(false);
            mismatched += (long)response.MismatchedCount;
        }
        return mismatched;
    }

    public static async Task RunAsync(MigrationSession session, CancellationToken cancellationToken)
    {
        var job = session.Job;
        var memory = job.Memory;
        var kind = session.Options.Checksum;
        session.Report(MigrationPhase.Verifying);
        using var span = MigrationTelemetry.ActivitySource.StartActivity("migration verify");
        long mismatched = 0;
        var pages = new List<long>();
        VerifyPagesResponse? last = null;
        for (long first = 0; first < memory.PageCount; first += ChunkPages)
        {
            int count = (int)Math.Min(ChunkPages, memory.PageCount - first);
            var request = new VerifyPagesRequest { MigrationId = job.MigrationId, FirstPage = (ulong)first, Last = first + count >= memory.PageCount, Checksum = Codec.PageChecksums.ToWire(kind) };
            request.Digests.Capacity = count;
            await AddDigestsAsync(job, request, first, count, kind, holds: null, cancellationToken).ConfigureAwait(false);
            var response = await session.Channel.AsyncUnaryCall(PagesContract.VerifyPages, request,
                new CallOptions(CancellationToken: cancellationToken)).ResponseAsync.ConfigureAwait(false);
            mismatched += (long)response.MismatchedCount;
            foreach (ulong p in response.MismatchedPages) pages.Add((long)p);
            last = response;
        }
        if (last is not null)
        {
            session.RemoteFaults = (long)last.RemoteFaults;
            session.FaultP50 = TimeSpan.FromTicks((long)last.FaultLatencyP50Ns / 100);
            session.FaultP99 = TimeSpan.FromTicks((long)last.FaultLatencyP99Ns / 100);
            MigrationTelemetry.RemoteFaults.Add((long)last.RemoteFaults);
        }
        span?.SetTag("pages", memory.PageCount).SetTag("mismatched.pages", mismatched);
        if (mismatched > 0) throw new MigrationIntegrityException(job.MigrationId, mismatched, pages);
        session.PagesVerified = memory.PageCount;
    }
}
