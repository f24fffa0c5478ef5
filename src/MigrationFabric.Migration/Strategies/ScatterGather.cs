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

/// <summary>Options of <see cref="ScatterGather"/>.</summary>
public sealed class ScatterGatherOptions : PreCopyOptions
{
    /// <summary>The intermediates' data-plane addresses, in the order the destination was given them (each must have accepted its part, see <see cref="SplitSubHost"/>). Required, at least one.</summary>
    public IReadOnlyList<Uri> Intermediates { get; set; } = [];

    /// <summary>Scatter rounds at most before the source lets the VM go. Default 8.</summary>
    public int ScatterMaxRounds { get; set; } = 8;

    /// <inheritdoc/>
    public override void Validate()
    {
        base.Validate();
        if (Intermediates is null || Intermediates.Count == 0) throw new ArgumentException($"{nameof(ScatterGatherOptions)}.{nameof(Intermediates)} must name at least one intermediate host.");
        foreach (var u in Intermediates)
            if (u is null || !u.IsAbsoluteUri) throw new ArgumentException($"{nameof(ScatterGatherOptions)}.{nameof(Intermediates)} must be absolute addresses, had '{u}'.");
        if (ScatterMaxRounds < 1) throw new ArgumentException($"{nameof(ScatterGatherOptions)}.{nameof(ScatterMaxRounds)} must be at least 1, was {ScatterMaxRounds}.");
    }
}

/// <summary>Scatter-gather: the source scatters every page to intermediate hosts as fast as the links allow (its memory is free as soon as that ends: the eviction time), the destination resumes at once with every page remote and gathers them from the intermediates, faulting from whichever holds a page.</summary>
/// <remarks>
/// This variant scatters while the VM still runs at the source (pre-copy rounds to the intermediates, the last dirty pages
/// while paused) and resumes it at the destination when the scatter ends; the paper's variant resumes first and scatters
/// from the suspended source. Integrity is checked at the destination (every page, after the gather) and at each
/// intermediate (the pages it was given). An intermediate lost before the hand-over fails the migration (the VM stays at
/// the source); lost during the gather, it loses the pages only it held: the destination's migration fails naming them.
/// </remarks>
public sealed class ScatterGather(ScatterGatherOptions options) : MigrationStrategy(options)
{
    private readonly ConditionalWeakTable<MigrationSession, HostLink[]> _parts = new();

    private ScatterGatherOptions Options => (ScatterGatherOptions)BaseOptions;

    /// <inheritdoc/>
    public override string Name => "scatter-gather";

    /// <summary>Time from the start until the source's memory was no longer needed, of the last migration this instance ran.</summary>
    public TimeSpan EvictionTime { get; private set; }

    private protected override async Task BeforeSwitchOverAsync(MigrationSession session, CancellationToken cancellationToken)
    {
        var job = session.Job;
        var memory = job.Memory;
        var channelOptions = Options.Channel ?? new RpcChannelOptions();
        int streamsEach = Math.Max(1, Options.Streams / Options.Intermediates.Count);
        var parts = Options.Intermediates.Select(a => HostLink.Open(a, streamsEach, channelOptions, job.MigrationId + SplitSubHost.Suffix)).ToArray();
        _parts.AddOrUpdate(session, parts);
        session.FurtherDestinations = () =>
        {
            var d = new DestinationProgress[parts.Length];
            for (int k = 0; k < d.Length; k++)
            {
                var c = parts[k].Streams?.Counters;
                d[k] = new DestinationProgress(parts[k].Address.Authority, DestinationRole.Intermediate, c?.BytesSent ?? 0, c?.PagesSent ?? 0, 0);
            }
            return d;
        };
        var pages = ArrayPool<long>.Shared.Rent((int)memory.PageCount);
        try
        {
            // The cap applies to the links to the further hosts too (they share one bucket; the destination's streams have their own).
            var bucket = Options.BandwidthCap is { } cap ? new TokenBucket(cap, Math.Max(cap / 10, 4L << 20), Options.TimeProvider) : null;
            var open = new StreamOpen
            {
                MigrationId = parts[0].MigrationId, Vm = job.Vm, TotalPages = (ulong)memory.PageCount, PageSize = Page.Size,
                Codec = new CodecOptions { Compression = Options.Compression == PageCompression.Deflate ? Compression.Deflate : Compression.None, Checksum = PageChecksums.ToWire(Options.Checksum) },
            };
            foreach (var part in parts)
                part.Streams = await PageStreamGroup.OpenAsync(part.StreamChannels, open, Options.BatchPages, Options.Compression, bucket, cancellationToken, Options.DataChannel).ConfigureAwait(false);
            session.Report(MigrationPhase.PreCopy);
            memory.Dirty.ClearAll();
            for (int round = 1; ; round++)
            {
                session.Round = round;
                long start = session.Timestamp();
                long before = Sent(parts);
                if (round == 1)
                    for (long p = 0; p < memory.PageCount; p++, session.ReportWalkAt(p)) await RouteAsync(parts, memory, p, 1, PageFlags.None).ConfigureAwait(false);
                else
                {
                    var collector = new PageListCollector(pages);
                    memory.HarvestDirty(ref collector);
                    for (int i = 0; i < collector.Count; i++) await RouteAsync(parts, memory, pages[i], (uint)round, PageFlags.Retransfer).ConfigureAwait(false);
                }
                await FlushAsync(parts, (uint)round, cancellationToken).ConfigureAwait(false);
                var duration = session.Since(start);
                session.AddTransferTime(duration);
                session.Rounds.Add(new RoundReport(round, Sent(parts) - before, 0, duration, 0, job.Mmu.Throttle));
                long remaining = memory.Dirty.CountSet();
                session.RemainingPages = remaining;
                session.Report(MigrationPhase.PreCopy);
                if (remaining * (double)Page.Size / Math.Max(1, BytesPerSecond(parts, session)) <= Options.DowntimeTarget.TotalSeconds || round >= Options.ScatterMaxRounds) break;
                cancellationToken.ThrowIfCancellationRequested();
            }

            session.Report(MigrationPhase.SwitchOver);
            long pauseTs = session.Timestamp();
            session.Pause(cancellationToken);
            var last = new PageListCollector(pages);
            memory.HarvestDirty(ref last);
            uint final = (uint)(session.Round + 1);
            for (int i = 0; i < last.Count; i++) await RouteAsync(parts, memory, pages[i], final, PageFlags.Retransfer).ConfigureAwait(false);
            await FlushAsync(parts, final, cancellationToken).ConfigureAwait(false);
            foreach (var part in parts)
                await part.Control.AsyncUnaryCall(PagesContract.SwitchOver, new SwitchOverRequest { MigrationId = part.MigrationId, Checksum = PageChecksums.ToWire(Options.Checksum) },
                    new CallOptions().WithTimeout(Options.SwitchOverTimeout)).ResponseAsync.ConfigureAwait(false);
            // Every page is on an intermediate: the source's memory is no longer needed.
            EvictionTime = session.Elapsed;
            var bits = new byte[(memory.PageCount + 7) / 8];
            for (long p = 0; p < memory.PageCount; p++) bits[p >> 3] |= (byte)(1 << (int)(p & 7));
            var deviceState = job.CaptureDeviceState?.Invoke() ?? ReadOnlyMemory<byte>.Empty;
            cancellationToken.ThrowIfCancellationRequested();
            var response = await session.Channel.AsyncUnaryCall(PagesContract.SwitchOver, new SwitchOverRequest
            {
                MigrationId = job.MigrationId, DeviceState = Google.Protobuf.UnsafeByteOperations.UnsafeWrap(deviceState),
                PendingPages = Google.Protobuf.UnsafeByteOperations.UnsafeWrap(bits), PendingCount = (ulong)memory.PageCount,
                SourceAddress = parts[0].Address.ToString(),
                Checksum = PageChecksums.ToWire(Options.Checksum),
            }, new CallOptions().WithTimeout(Options.SwitchOverTimeout)).ResponseAsync.ConfigureAwait(false);
            session.MarkSwitchedOver(session.Since(pauseTs));
            session.PostCopyPages = (long)response.PendingCount;
        }
        catch (Exception e) when (!session.SwitchedOver)
        {
            var lost = parts.FirstOrDefault(p => p.Streams?.Fault is not null);
            var fault = lost?.Streams?.Fault;
            foreach (var part in parts) await part.AbortAsync("the scatter-gather migration failed").ConfigureAwait(false);
            if (fault is not null && !cancellationToken.IsCancellationRequested)
                throw new IOException($"the intermediate {lost!.Address} failed: {fault.Message}", fault);
            if (e is RpcException rpc && rpc.StatusCode == StatusCode.Unavailable)
                throw new IOException($"an intermediate or the destination is unavailable: {rpc.Status.Detail}", e);
            throw;
        }
        finally
        {
            ArrayPool<long>.Shared.Return(pages);
        }
    }

    private static long Sent(HostLink[] parts)
    {
        long n = 0;
        foreach (var p in parts) n += p.Streams?.Counters.PagesSent ?? 0;
        return n;
    }

    private static double BytesPerSecond(HostLink[] parts, MigrationSession session)
    {
        long bytes = 0;
        foreach (var p in parts) bytes += p.Streams?.Counters.BytesSent ?? 0;
        double secs = session.TransferTime.TotalSeconds;
        return secs > 0 ? bytes / secs : 0;
    }

    private static ValueTask RouteAsync(HostLink[] parts, Memory.Guest.GuestMemory memory, long page, uint round, byte flags) =>
        parts[ScatterPlan.IntermediateOf(page, parts.Length)].Streams!.AddAsync(memory, page, round, flags);

    private static Task FlushAsync(HostLink[] parts, uint round, CancellationToken cancellationToken)
    {
        var flushes = new Task[parts.Length];
        for (int i = 0; i < parts.Length; i++) flushes[i] = parts[i].Streams!.FlushAsync(round, cancellationToken);
        return Task.WhenAll(flushes);
    }

    private protected override async Task VerifyAsync(MigrationSession session, CancellationToken cancellationToken)
    {
        if (!_parts.TryGetValue(session, out var parts)) throw new InvalidOperationException("scatter-gather: no intermediates for this migration.");
        long mismatched = 0;
        for (int k = 0; k < parts.Length; k++)
        {
            int holder = k;
            mismatched += await IntegrityCheck.MismatchedAtHolderAsync(session.Job, session.Options.Checksum, parts[k].Control, parts[k].MigrationId,
                page => ScatterPlan.IntermediateOf(page, parts.Length) == holder, cancellationToken).ConfigureAwait(false);
        }
        if (mismatched > 0) throw new MigrationIntegrityException(session.Job.MigrationId, mismatched, []);
        // The destination: every page, once gathered.
        await IntegrityCheck.RunAsync(session, cancellationToken).ConfigureAwait(false);
        foreach (var part in parts)
            if (part.Streams is not null) await part.Streams.CloseAsync(cancellationToken).ConfigureAwait(false);
    }

    private protected override MigrationReport CompleteReport(MigrationSession session, MigrationReport report)
    {
        if (!_parts.TryGetValue(session, out var parts)) return report;
        var perDestination = new Dictionary<string, long>(report.BytesSentPerDestination);
        long bytes = report.BytesSent, sent = report.PagesSent, zero = report.ZeroPagesSent;
        foreach (var part in parts)
        {
            if (part.Streams is null) continue;
            var c = part.Streams.Counters;
            perDestination[part.Address.Authority] = c.BytesSent;
            bytes += c.BytesSent;
            sent += c.PagesSent;
            zero += c.ZeroPagesSent;
            _ = part.DisposeAsync().AsTask();
        }
        _parts.Remove(session);
        return report with { BytesSent = bytes, PagesSent = sent, ZeroPagesSent = zero, BytesSentPerDestination = perDestination };
    }
}
