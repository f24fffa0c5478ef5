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
    /// <summary>The sub-hosts' data-plane addresses, 1..254 distinct hosts (each must have accepted its part, see <see cref="SplitSubHost"/>). Required.</summary>
    public IReadOnlyList<Uri> SubHosts { get; set; } = [];

    /// <summary>Written pages the main host (the job's destination) takes; the rest go to the sub-hosts. Required.</summary>
    public long MainBudgetPages { get; set; }

    /// <summary>Pages each sub-host may take, in <see cref="SubHosts"/> order; they also weigh how the rest is dealt. Default null: no limit, dealt evenly.</summary>
    public IReadOnlyList<long>? SubHostBudgetPages { get; set; }

    /// <summary>Pages a demand monitor saw accessed lately (DemandMonitor.RecentAccess: it clears the access bits it samples), which the plan counts hot along with the access bits. Default null: the access bits alone.</summary>
    public AtomicPageBitmap? RecentAccess { get; set; }

    /// <summary>Hot means accessed within this window before the plan: the access bits (and <see cref="RecentAccess"/>) are cleared, the VM runs this long, then the plan reads them. Default zero: the bits as found (accessed since whoever last harvested them; at a source without a pager nothing does, so every page ever touched looks hot).</summary>
    public TimeSpan HotWindow { get; set; }

    /// <summary>Pre-copy rounds at most before switch-over (split does not throttle: it stops when the remainder fits the downtime target or here). Default 8.</summary>
    public int SplitMaxRounds { get; set; } = 8;

    /// <inheritdoc/>
    public override void Validate()
    {
        base.Validate();
        if (SubHosts is null || SubHosts.Count == 0)
            throw new ArgumentException($"{nameof(SplitOptions)}.{nameof(SubHosts)} must name at least one sub-host's absolute address.");
        MemoryMap.CheckSubHosts(SubHosts, $"{nameof(SplitOptions)}.{nameof(SubHosts)}");
        if (MainBudgetPages <= 0) throw new ArgumentException($"{nameof(SplitOptions)}.{nameof(MainBudgetPages)} must be positive, was {MainBudgetPages}.");
        if (SubHostBudgetPages is not null)
        {
            if (SubHostBudgetPages.Count != SubHosts.Count)
                throw new ArgumentException($"{nameof(SplitOptions)}.{nameof(SubHostBudgetPages)} has {SubHostBudgetPages.Count} budgets for {SubHosts.Count} sub-hosts; give one per sub-host or none.");
            for (int k = 0; k < SubHostBudgetPages.Count; k++)
                if (SubHostBudgetPages[k] <= 0)
                    throw new ArgumentException($"{nameof(SplitOptions)}.{nameof(SubHostBudgetPages)}[{k}] must be positive, was {SubHostBudgetPages[k]}.");
        }
        if (HotWindow < TimeSpan.Zero || HotWindow > TimeSpan.FromMinutes(1))
            throw new ArgumentException($"{nameof(SplitOptions)}.{nameof(HotWindow)} must be within 0..1 minute, was {HotWindow}.");
        if (SplitMaxRounds < 1) throw new ArgumentException($"{nameof(SplitOptions)}.{nameof(SplitMaxRounds)} must be at least 1, was {SplitMaxRounds}.");
    }
}

/// <summary>Split migration (Suetake et al., CLOUD'18; seed 004's comparison): the VM's pages go in parallel to a main host (the hottest, up to its budget; it runs the vCPUs) and one or more sub-hosts (the rest); afterwards the main pages in from and out to the sub-hosts.</summary>
/// <remarks>
/// Pre-copy rounds to all hosts at once, each page always to the same host (<see cref="SplitPlan"/>); switch-over
/// pauses the source, sends the last dirty pages to their hosts, hands every sub-host its part, then resumes the VM at
/// the main with the plan's <see cref="MemoryMap"/> ahead of the device state. The integrity check covers every host,
/// each for the pages it was given. A sub-host failing before switch-over fails the migration (the VM stays at the
/// source); after it, the main host's <see cref="RemotePaging.RemotePager.Lost"/> reports the pages lost.
/// </remarks>
public sealed class Split(SplitOptions options) : MigrationStrategy(options)
{
    private readonly ConditionalWeakTable<MigrationSession, SubParts> _parts = new();

    /// <summary>Its options (the Host sets <see cref="SplitOptions.RecentAccess"/> from the VM's demand monitor before it runs).</summary>
    public SplitOptions Options => (SplitOptions)BaseOptions;

    /// <inheritdoc/>
    public override string Name => "split";

    /// <summary>Which pages go to which sub-host, and the links to each (in <see cref="SplitOptions.SubHosts"/> order).</summary>
    private sealed record SubParts(SplitPlan Plan, HostLink[] Links);

    private protected override async Task BeforeSwitchOverAsync(MigrationSession session, CancellationToken cancellationToken)
    {
        var job = session.Job;
        var memory = job.Memory;
        var channelOptions = Options.Channel ?? new RpcChannelOptions();
        if (Options.HotWindow > TimeSpan.Zero)
        {
            // A fresh harvest: what the guest touches in the window is what the main should hold.
            memory.Accessed.ClearAll();
            Options.RecentAccess?.ClearAll();
            await Task.Delay(Options.HotWindow, Options.TimeProvider, cancellationToken).ConfigureAwait(false);
        }
        var plan = SplitPlan.Create(memory, Options.MainBudgetPages, Options.SubHosts, Options.SubHostBudgetPages, Options.RecentAccess);
        var links = new HostLink[Options.SubHosts.Count];
        for (int k = 0; k < links.Length; k++) links[k] = HostLink.Open(Options.SubHosts[k], Options.Streams, channelOptions, job.MigrationId + SplitSubHost.Suffix);
        var part = new SubParts(plan, links);
        _parts.AddOrUpdate(session, part);
        session.FurtherDestinations = () => DestinationsOf(part);
        var pages = ArrayPool<long>.Shared.Rent((int)memory.PageCount);
        var flushes = new Task[links.Length + 1];
        try
        {
            // The cap applies to the links to the further hosts too (they share one bucket; the destination's streams have their own).
            var bucket = Options.BandwidthCap is { } cap ? new TokenBucket(cap, Math.Max(cap / 10, 4L << 20), Options.TimeProvider) : null;
            var open = new StreamOpen
            {
                MigrationId = links[0].MigrationId, Vm = job.Vm, TotalPages = (ulong)memory.PageCount, PageSize = Page.Size,
                Codec = new CodecOptions { Compression = Options.Compression == PageCompression.Deflate ? Compression.Deflate : Compression.None, Checksum = PageChecksums.ToWire(Options.Checksum) },
            };
            var opening = new Task<PageStreamGroup>[links.Length];
            for (int k = 0; k < links.Length; k++)
                opening[k] = PageStreamGroup.OpenAsync(links[k].StreamChannels, open, Options.BatchPages, Options.Compression, bucket, cancellationToken, Options.DataChannel);
            try { await Task.WhenAll(opening).ConfigureAwait(false); }
            finally
            {
                for (int k = 0; k < links.Length; k++)
                    if (opening[k].IsCompletedSuccessfully) links[k].Streams = opening[k].Result;
            }
            session.Report(MigrationPhase.PreCopy);
            memory.Dirty.ClearAll();
            for (int round = 1; ; round++)
            {
                session.Round = round;
                long start = session.Timestamp();
                long before = PagesSent(session, part);
                if (round == 1)
                    for (long p = 0; p < memory.PageCount; p++, session.ReportWalkAt(p)) await RouteAsync(session, part, p, 1, PageFlags.None).ConfigureAwait(false);
                else
                {
                    var collector = new PageListCollector(pages);
                    memory.HarvestDirty(ref collector);
                    for (int i = 0; i < collector.Count; i++) await RouteAsync(session, part, pages[i], (uint)round, PageFlags.Retransfer).ConfigureAwait(false);
                }
                await FlushAllAsync(session, part, flushes, (uint)round, cancellationToken).ConfigureAwait(false);
                var duration = session.Since(start);
                session.AddTransferTime(duration);
                long sent = PagesSent(session, part) - before;
                session.Rounds.Add(new RoundReport(round, sent, 0, duration, 0, job.Mmu.Throttle));
                long remaining = memory.Dirty.CountSet();
                session.RemainingPages = remaining;
                session.Report(MigrationPhase.PreCopy);
                if (session.ExpectedDowntime(remaining) <= Options.DowntimeTarget || round >= Options.SplitMaxRounds) break;
                cancellationToken.ThrowIfCancellationRequested();
            }

            // The plan is fixed: its map is written before the pause, not during the downtime.
            var planMap = plan.Map.Serialize();
            session.Report(MigrationPhase.SwitchOver);
            long pauseTs = session.Timestamp();
            session.Pause(cancellationToken);
            var last = new PageListCollector(pages);
            memory.HarvestDirty(ref last);
            uint final = (uint)(session.Round + 1);
            for (int i = 0; i < last.Count; i++) await RouteAsync(session, part, pages[i], final, PageFlags.Retransfer).ConfigureAwait(false);
            await FlushAllAsync(session, part, flushes, final, cancellationToken).ConfigureAwait(false);
            session.RemainingPages = 0;
            // The sub-hosts first: once the main resumes, its faults need them serving.
            for (int k = 0; k < links.Length; k++)
                flushes[k] = links[k].Control.AsyncUnaryCall(PagesContract.SwitchOver, new SwitchOverRequest { MigrationId = links[k].MigrationId, Checksum = PageChecksums.ToWire(Options.Checksum) },
                    new CallOptions().WithTimeout(Options.SwitchOverTimeout)).ResponseAsync;
            flushes[links.Length] = Task.CompletedTask;
            await WhenAllNamingAsync(part, flushes).ConfigureAwait(false);
            var deviceState = job.CaptureDeviceState?.Invoke() ?? ReadOnlyMemory<byte>.Empty;
            var state = SplitSwitchOverState.Wrap(planMap, deviceState.Span);
            cancellationToken.ThrowIfCancellationRequested();
            await session.Channel.AsyncUnaryCall(PagesContract.SwitchOver,
                new SwitchOverRequest { MigrationId = job.MigrationId, DeviceState = Google.Protobuf.UnsafeByteOperations.UnsafeWrap(state), Checksum = PageChecksums.ToWire(Options.Checksum) },
                new CallOptions().WithTimeout(Options.SwitchOverTimeout)).ResponseAsync.ConfigureAwait(false);
            session.MarkSwitchedOver(session.Since(pauseTs));
        }
        catch (Exception e) when (!session.SwitchedOver)
        {
            int failed = Array.FindIndex(links, l => l.Streams?.Fault is not null);
            var subFault = failed >= 0 ? links[failed].Streams!.Fault : null;
            // The main's copy is discarded by the rollback; the sub-hosts' here. Their streams go first so the abort finds no applier.
            await Task.WhenAll(links.Select(l => l.AbortAsync("the split migration failed"))).ConfigureAwait(false);
            if (e is SubHostCallException named && !cancellationToken.IsCancellationRequested) throw new IOException(named.Message, named.InnerException);
            if (subFault is not null && !cancellationToken.IsCancellationRequested)
                throw new IOException($"the sub-host {Options.SubHosts[failed]} failed: {subFault.Message}", subFault);
            if (e is RpcException rpc && rpc.StatusCode == StatusCode.Unavailable && session.Streams.Fault is null)
                throw new IOException($"a sub-host ({string.Join(", ", Options.SubHosts)}) or the main host is unavailable: {rpc.Status.Detail}", e);
            throw;
        }
        finally
        {
            ArrayPool<long>.Shared.Return(pages);
        }
    }

    /// <summary>A call to one sub-host failed; the message names it.</summary>
    private sealed class SubHostCallException(string message, Exception inner) : Exception(message, inner);

    private async Task WhenAllNamingAsync(SubParts part, Task[] tasks)
    {
        try { await Task.WhenAll(tasks).ConfigureAwait(false); }
        catch
        {
            for (int k = 0; k < part.Links.Length; k++)
                if (tasks[k].IsFaulted)
                    throw new SubHostCallException($"the sub-host {Options.SubHosts[k]} failed: {tasks[k].Exception!.InnerException!.Message}", tasks[k].Exception!.InnerException!);
            throw;
        }
    }

    private async Task FlushAllAsync(MigrationSession session, SubParts part, Task[] flushes, uint round, CancellationToken cancellationToken)
    {
        for (int k = 0; k < part.Links.Length; k++) flushes[k] = part.Links[k].Streams!.FlushAsync(round, cancellationToken);
        flushes[part.Links.Length] = session.Streams.FlushAsync(round, cancellationToken);
        await WhenAllNamingAsync(part, flushes).ConfigureAwait(false);
    }

    private static long PagesSent(MigrationSession session, SubParts part)
    {
        long n = session.Streams.Counters.PagesSent;
        foreach (var l in part.Links) n += l.Streams?.Counters.PagesSent ?? 0;
        return n;
    }

    private static IReadOnlyList<DestinationProgress> DestinationsOf(SubParts part)
    {
        var result = new DestinationProgress[part.Links.Length];
        for (int k = 0; k < result.Length; k++)
        {
            var c = part.Links[k].Streams?.Counters;
            result[k] = new DestinationProgress(part.Links[k].Address.Authority, DestinationRole.SubHost, c?.BytesSent ?? 0, c?.PagesSent ?? 0, part.Plan.PagesOnSubHost(k));
        }
        return result;
    }

    private static ValueTask RouteAsync(MigrationSession session, SubParts part, long page, uint round, byte flags)
    {
        int host = part.Plan.HostOf(page);
        return host == MemoryMap.Main
            ? session.Streams.AddAsync(session.Job.Memory, page, round, flags)
            : part.Links[host - 1].Streams!.AddAsync(session.Job.Memory, page, round, flags);
    }

    private protected override async Task VerifyAsync(MigrationSession session, CancellationToken cancellationToken)
    {
        if (!_parts.TryGetValue(session, out var part)) throw new InvalidOperationException("split: no sub-host parts for this migration.");
        try
        {
            // Each host is checked for the pages it was given.
            var checks = new Task<long>[part.Links.Length + 1];
            checks[0] = IntegrityCheck.MismatchedAtHolderAsync(session.Job, session.Options.Checksum, session.Channel, session.Job.MigrationId, page => part.Plan.HostOf(page) == MemoryMap.Main, cancellationToken);
            for (int k = 0; k < part.Links.Length; k++)
            {
                int host = k + 1;
                checks[host] = IntegrityCheck.MismatchedAtHolderAsync(session.Job, session.Options.Checksum, part.Links[k].Control, part.Links[k].MigrationId, page => part.Plan.HostOf(page) == host, cancellationToken);
            }
            long mismatched = 0;
            foreach (long m in await Task.WhenAll(checks).ConfigureAwait(false)) mismatched += m;
            if (mismatched > 0) throw new MigrationIntegrityException(session.Job.MigrationId, mismatched, []);
            session.PagesVerified = session.Job.Memory.PageCount;
            foreach (var l in part.Links)
                if (l.Streams is not null) await l.Streams.CloseAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            session.Activity?.SetTag("split.sub.pages", part.Plan.SubPages).SetTag("split.sub.hosts", part.Links.Length);
        }
    }


    private protected override MigrationReport CompleteReport(MigrationSession session, MigrationReport report)
    {
        if (!_parts.TryGetValue(session, out var part)) return report;
        var perDestination = new Dictionary<string, long>(report.BytesSentPerDestination);
        long bytes = report.BytesSent, sent = report.PagesSent, zero = report.ZeroPagesSent;
        foreach (var l in part.Links)
        {
            if (l.Streams is null) continue;
            var c = l.Streams.Counters;
            perDestination[l.Address.Authority] = c.BytesSent;
            bytes += c.BytesSent;
            sent += c.PagesSent;
            zero += c.ZeroPagesSent;
        }
        var result = report with { BytesSent = bytes, PagesSent = sent, ZeroPagesSent = zero, BytesSentPerDestination = perDestination };
        foreach (var l in part.Links) _ = l.DisposeAsync().AsTask();
        _parts.Remove(session);
        return result;
    }
}
