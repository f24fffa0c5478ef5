using System.Buffers;
using System.Runtime.CompilerServices;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Memory.Integrity;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Tracking;
using MigrationFabric.Migration.Codec;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.MultiHost;
using MigrationFabric.Migration.Reporting;
using MigrationFabric.Migration.Verification;
using MigrationFabric.Rpc;
using MigrationFabric.Rpc.Client;

namespace MigrationFabric.Migration.Strategies;

/// <summary>Options of <see cref="Split"/>.</summary>
public sealed class SplitOptions : PreCopyOptions
{
    /// <summary>The sub-host's data-plane address (it must have accepted the sub part, see <see cref="SplitSubHost"/>). Required.</summary>
    public Uri? SubHost { get; set; }

    /// <summary>Written pages the main host (the job's destination) takes; the rest go to the sub-host. Required.</summary>
    public long MainBudgetPages { get; set; }

    /// <summary>Pre-copy rounds at most before switch-over (split does not throttle: it stops when the remainder fits the downtime target or here). Default 8.</summary>
    public int SplitMaxRounds { get; set; } = 8;

    /// <inheritdoc/>
    public override void Validate()
    {
        base.Validate();
        if (SubHost is null || !SubHost.IsAbsoluteUri) throw new ArgumentException($"{nameof(SplitOptions)}.{nameof(SubHost)} must be the sub-host's absolute address, was '{SubHost}'.");
        if (MainBudgetPages <= 0) throw new ArgumentException($"{nameof(SplitOptions)}.{nameof(MainBudgetPages)} must be positive, was {MainBudgetPages}.");
        if (SplitMaxRounds < 1) throw new ArgumentException($"{nameof(SplitOptions)}.{nameof(SplitMaxRounds)} must be at least 1, was {SplitMaxRounds}.");
    }
}

/// <summary>Split migration (Suetake et al., CLOUD'18; seed 004's comparison): the VM's pages go in parallel to a main host (the hottest, up to its budget; it runs the vCPUs) and a sub-host (the rest); afterwards the main pages in from and out to the sub-host.</summary>
/// <remarks>
/// Pre-copy rounds to both at once, each page always to the same host; switch-over pauses the source, sends the last
/// dirty pages to their hosts, hands the sub-host its part, then resumes the VM at the main. The integrity check covers
/// both hosts, each for the pages it was given. A sub-host failing before switch-over fails the migration (the VM stays
/// at the source); after it, the main host's <see cref="RemotePaging.RemotePager.Lost"/> reports the pages lost.
/// </remarks>
public sealed class Split(SplitOptions options) : MigrationStrategy(options)
{
    private readonly ConditionalWeakTable<MigrationSession, SubPart> _parts = new();

    private SplitOptions Options => (SplitOptions)BaseOptions;

    /// <inheritdoc/>
    public override string Name => "split";

    /// <summary>Which pages go to the sub-host, and the links to it.</summary>
    private sealed record SubPart(SplitPlan Plan, HostLink Link);

    private protected override async Task BeforeSwitchOverAsync(MigrationSession session, CancellationToken cancellationToken)
    {
        var job = session.Job;
        var memory = job.Memory;
        var channelOptions = Options.Channel ?? new RpcChannelOptions();
        var part = new SubPart(SplitPlan.Create(memory, Options.MainBudgetPages),
            HostLink.Open(Options.SubHost!, Options.Streams, channelOptions, job.MigrationId + SplitSubHost.Suffix));
        _parts.AddOrUpdate(session, part);
        var pages = ArrayPool<long>.Shared.Rent((int)memory.PageCount);
        try
        {
            // The cap applies to the links to the further hosts too (they share one bucket; the destination's streams have their own).
            var bucket = Options.BandwidthCap is { } cap ? new TokenBucket(cap, Math.Max(cap / 10, 4L << 20), Options.TimeProvider) : null;
            var open = new StreamOpen
            {
                MigrationId = part.Link.MigrationId, Vm = job.Vm, TotalPages = (ulong)memory.PageCount, PageSize = Page.Size,
                Codec = new CodecOptions { Compression = Options.Compression == PageCompression.Deflate ? Compression.Deflate : Compression.None, Checksum = ChecksumKind.Xxh64 },
            };
            part.Link.Streams = await PageStreamGroup.OpenAsync(part.Link.StreamChannels, open, Options.BatchPages, Options.Compression, bucket, cancellationToken).ConfigureAwait(false);
            session.Report(MigrationPhase.PreCopy);
            memory.Dirty.ClearAll();
            for (int round = 1; ; round++)
            {
                session.Round = round;
                long start = session.Timestamp();
                long before = session.Streams.Counters.PagesSent + part.Link.Streams.Counters.PagesSent;
                if (round == 1)
                    for (long p = 0; p < memory.PageCount; p++, session.ReportWalkAt(p)) await RouteAsync(session, part, p, 1, PageFlags.None).ConfigureAwait(false);
                else
                {
                    var collector = new PageListCollector(pages);
                    memory.HarvestDirty(ref collector);
                    for (int i = 0; i < collector.Count; i++) await RouteAsync(session, part, pages[i], (uint)round, PageFlags.Retransfer).ConfigureAwait(false);
                }
                await Task.WhenAll(session.Streams.FlushAsync((uint)round, cancellationToken), part.Link.Streams.FlushAsync((uint)round, cancellationToken)).ConfigureAwait(false);
                var duration = session.Since(start);
                session.AddTransferTime(duration);
                long sent = session.Streams.Counters.PagesSent + part.Link.Streams.Counters.PagesSent - before;
                session.Rounds.Add(new RoundReport(round, sent, 0, duration, 0, job.Mmu.Throttle));
                long remaining = memory.Dirty.CountSet();
                session.RemainingPages = remaining;
                session.Report(MigrationPhase.PreCopy);
                if (session.ExpectedDowntime(remaining) <= Options.DowntimeTarget || round >= Options.SplitMaxRounds) break;
                cancellationToken.ThrowIfCancellationRequested();
            }

            session.Report(MigrationPhase.SwitchOver);
            long pauseTs = session.Timestamp();
            session.Pause(cancellationToken);
            var last = new PageListCollector(pages);
            memory.HarvestDirty(ref last);
            uint final = (uint)(session.Round + 1);
            for (int i = 0; i < last.Count; i++) await RouteAsync(session, part, pages[i], final, PageFlags.Retransfer).ConfigureAwait(false);
            await Task.WhenAll(session.Streams.FlushAsync(final, cancellationToken), part.Link.Streams.FlushAsync(final, cancellationToken)).ConfigureAwait(false);
            session.RemainingPages = 0;
            // The sub-host first: once the main resumes, its faults need the sub-host serving.
            await part.Link.Control.AsyncUnaryCall(PagesContract.SwitchOver, new SwitchOverRequest { MigrationId = part.Link.MigrationId },
                new CallOptions().WithTimeout(Options.SwitchOverTimeout)).ResponseAsync.ConfigureAwait(false);
            var deviceState = job.CaptureDeviceState?.Invoke() ?? ReadOnlyMemory<byte>.Empty;
            cancellationToken.ThrowIfCancellationRequested();
            await session.Channel.AsyncUnaryCall(PagesContract.SwitchOver,
                new SwitchOverRequest { MigrationId = job.MigrationId, DeviceState = Google.Protobuf.UnsafeByteOperations.UnsafeWrap(deviceState) },
                new CallOptions().WithTimeout(Options.SwitchOverTimeout)).ResponseAsync.ConfigureAwait(false);
            session.MarkSwitchedOver(session.Since(pauseTs));
        }
        catch (Exception e) when (!session.SwitchedOver)
        {
            var subFault = part.Link.Streams?.Fault;
            // The main's copy is discarded by the rollback; the sub-host's here. Its streams go first so the abort finds no applier.
            await part.Link.AbortAsync("the split migration failed").ConfigureAwait(false);
            if (subFault is not null && !cancellationToken.IsCancellationRequested)
                throw new IOException($"the sub-host {Options.SubHost} failed: {subFault.Message}", subFault);
            if (e is RpcException rpc && rpc.StatusCode == StatusCode.Unavailable && session.Streams.Fault is null)
                throw new IOException($"the sub-host {Options.SubHost} or the main host is unavailable: {rpc.Status.Detail}", e);
            throw;
        }
        finally
        {
            ArrayPool<long>.Shared.Return(pages);
        }
    }

    private static ValueTask RouteAsync(MigrationSession session, SubPart part, long page, uint round, byte flags) =>
        part.Plan.IsOnSub(page) ? part.Link.Streams!.AddAsync(session.Job.Memory, page, round, flags) : session.Streams.AddAsync(session.Job.Memory, page, round, flags);

    private protected override async Task VerifyAsync(MigrationSession session, CancellationToken cancellationToken)
    {
        if (!_parts.TryGetValue(session, out var part)) throw new InvalidOperationException("split: no sub-host part for this migration.");
        try
        {
            // Each host is checked for the pages it was given; 0 stands for "not given to this host" (never a real digest's place: its table holds 0 there too).
            long mismatched = await VerifyHostAsync(session, session.Channel, session.Job.MigrationId, part.Plan, onSub: false, cancellationToken).ConfigureAwait(false);
            mismatched += await VerifyHostAsync(session, part.Link.Control, part.Link.MigrationId, part.Plan, onSub: true, cancellationToken).ConfigureAwait(false);
            if (mismatched > 0) throw new MigrationIntegrityException(session.Job.MigrationId, mismatched, []);
            session.PagesVerified = session.Job.Memory.PageCount;
            if (part.Link.Streams is not null) await part.Link.Streams.CloseAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            session.Activity?.SetTag("split.sub.pages", part.Plan.SubPages);
        }
    }

    private static async Task<long> VerifyHostAsync(MigrationSession session, RpcChannel channel, string migrationId, SplitPlan plan, bool onSub, CancellationToken cancellationToken)
    {
        var memory = session.Job.Memory;
        long mismatched = 0;
        for (long first = 0; first < memory.PageCount; first += IntegrityCheck.ChunkPages)
        {
            int count = (int)Math.Min(IntegrityCheck.ChunkPages, memory.PageCount - first);
            var request = new VerifyPagesRequest { MigrationId = migrationId, FirstPage = (ulong)first, Last = first + count >= memory.PageCount };
            request.Digests.Capacity = count;
            for (int i = 0; i < count; i++)
                request.Digests.Add(plan.IsOnSub(first + i) == onSub ? IntegrityCheck.SourceDigest(session.Job, first + i) : 0);
            var response = await channel.AsyncUnaryCall(PagesContract.VerifyPages, request, new CallOptions(CancellationToken: cancellationToken)).ResponseAsync.ConfigureAwait(false);
            mismatched += (long)response.MismatchedCount;
        }
        return mismatched;
    }

    private protected override MigrationReport CompleteReport(MigrationSession session, MigrationReport report)
    {
        if (!_parts.TryGetValue(session, out var part) || part.Link.Streams is null) return report;
        var c = part.Link.Streams.Counters;
        var perDestination = new Dictionary<string, long>(report.BytesSentPerDestination) { [Options.SubHost!.Authority] = c.BytesSent };
        var result = report with
        {
            BytesSent = report.BytesSent + c.BytesSent, PagesSent = report.PagesSent + c.PagesSent, ZeroPagesSent = report.ZeroPagesSent + c.ZeroPagesSent,
            BytesSentPerDestination = perDestination,
        };
        _ = part.Link.DisposeAsync().AsTask();
        _parts.Remove(session);
        return result;
    }
}
