using System.Threading.Channels;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Integrity;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Migration.Codec;
using MigrationFabric.Rpc.Client;

namespace MigrationFabric.Migration.DataPlane;

/// <summary>The parallel PageStream calls of one migration to one destination (QEMU's multifd channels).</summary>
/// <remarks>
/// A page always travels on the same stream (chosen by its 1 MiB block), so a retransfer can never overtake
/// an older copy of the same page. The caller encodes pages into per-stream batches on its own thread; each
/// stream has a pump that writes full batches while the caller goes on encoding.
/// </remarks>
public sealed class PageStreamGroup : IAsyncDisposable
{
    private const int BlockShift = 8;
    private readonly PageStreamSender[] _senders;
    private readonly PageBatchBuilder[] _builders;
    private readonly Channel<object>[] _queues;
    private readonly Task[] _pumps;
    private readonly CancellationTokenSource _stop;
    private Exception? _fault;
    private int _disposed;

    private PageStreamGroup(PageStreamSender[] senders, int batchPages, PageCompression compression, Memory.Integrity.PageDigestKind checksum)
    {
        _senders = senders;
        // Not linked to the migration's token: the streams outlive a cancel that comes after switch-over; rollback disposes them.
        _stop = new CancellationTokenSource();
        _builders = new PageBatchBuilder[senders.Length];
        _queues = new Channel<object>[senders.Length];
        _pumps = new Task[senders.Length];
        for (int i = 0; i < senders.Length; i++)
        {
            _builders[i] = new PageBatchBuilder(batchPages, compression, frameHeadroom: true, checksum);
            _queues[i] = Channel.CreateBounded<object>(new BoundedChannelOptions(2) { SingleReader = true, SingleWriter = true });
            int index = i;
            _pumps[i] = Task.Run(() => PumpAsync(index));
        }
    }

    /// <summary>Bytes and pages moved.</summary>
    public DataPlaneCounters Counters { get; private set; } = new();

    /// <summary>Parallel streams.</summary>
    public int Streams => _senders.Length;

    /// <summary>The transport carrying the streams.</summary>
    public DataChannel DataChannel { get; private set; }

    /// <summary>Opens one page stream per channel of <paramref name="channels"/> (a channel each, so each stream has its own connection and read loop) for the migration described by <paramref name="open"/>:
    /// a PageStream call on it, or with <paramref name="dataChannel"/> Tcp a data channel negotiated on it (OpenDataChannel) to the same host.
    /// The batches carry the checksum kind <paramref name="open"/>'s codec names (not set: XXH64), as the receiver will verify.</summary>
    public static async Task<PageStreamGroup> OpenAsync(IReadOnlyList<RpcChannel> channels, StreamOpen open, int batchPages,
        PageCompression compression, TokenBucket? bucket, CancellationToken cancellationToken, DataChannel dataChannel = DataChannel.Grpc)
    {
        var checksum = PageChecksums.FromWire(open.Codec?.Checksum ?? ChecksumKind.Unspecified);
        var counters = new DataPlaneCounters();
        int streams = channels.Count;
        var opening = new Task<PageStreamSender>[streams];
        for (int i = 0; i < streams; i++)
        {
            var o = open.Clone();
            o.StreamIndex = (uint)i;
            opening[i] = dataChannel == DataChannel.Tcp
                ? OpenTcpAsync(channels[i], o, counters, bucket, cancellationToken)
                : PageStreamSender.OpenAsync(channels[i], o, counters, bucket, cancellationToken);
        }
        try
        {
            await Task.WhenAll(opening).ConfigureAwait(false);
        }
        catch
        {
            foreach (var t in opening)
                if (t.IsCompletedSuccessfully) await t.Result.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        var group = new PageStreamGroup([.. opening.Select(t => t.Result)], batchPages, compression, checksum);
        group.Counters = counters;
        group.DataChannel = dataChannel;
        return group;
    }

    private static async Task<PageStreamSender> OpenTcpAsync(RpcChannel control, StreamOpen open, DataPlaneCounters counters, TokenBucket? bucket, CancellationToken cancellationToken)
    {
        var transport = await Tcp.TcpPageStreamTransport.ConnectAsync(control, open.MigrationId, open.StreamIndex, cancellationToken).ConfigureAwait(false);
        return await PageStreamSender.OpenAsync(transport, open, counters, bucket, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Adds page <paramref name="page"/> of <paramref name="memory"/> (read now; zero and untouched pages go as a flag).</summary>
    /// <param name="cancellationToken">Ends a read through an <see cref="IAsyncPageContentReader"/> (the other reads do not wait).</param>
    public ValueTask AddAsync(GuestMemory memory, long page, uint round, byte flags = PageFlags.None, CancellationToken cancellationToken = default)
    {
        int s = (int)((page >> BlockShift) % _senders.Length);
        var builder = _builders[s];
        var residency = memory.GetResidency(page);
        if (residency is PageResidency.Zero or PageResidency.Ballooned) builder.AddZeroPage(page, flags);
        else if (PageReader is IAsyncPageContentReader remote) return AddReadAsync(remote, s, page, residency, round, flags, cancellationToken);
        else if (PageReader is { } reader) AddRead(reader, builder, page, residency, flags);
        else if (residency is PageResidency.Swapped or PageResidency.Remote)
            throw new NotSupportedException($"page {page} is {residency} at the source: migrating pages that are not in RAM is not supported by this strategy.");
        else builder.AddPage(page, memory.GetPageBytes(page), flags);
        return builder.IsFull ? EnqueueAsync(s, builder.Build(round)) : ValueTask.CompletedTask;
    }

    /// <summary>Reads every non-zero page through this reader instead of from guest RAM (memory-devirtualizing: a page in the share or in private swap, read without a page-in). Default null.</summary>
    /// <remarks>Resident pages go through it too: a pager evicting the page meanwhile would otherwise leave a discarded page to copy.</remarks>
    public IPageContentReader? PageReader { get; set; }

    // One page of scratch for the awaited reads: AddAsync has one caller at a time (its builders are not shared either).
    private byte[]? _readScratch;

    private async ValueTask AddReadAsync(IAsyncPageContentReader reader, int s, long page, PageResidency residency, uint round, byte flags, CancellationToken cancellationToken)
    {
        var contents = _readScratch ??= new byte[Page.Size];
        await reader.ReadPageAsync(page, residency, contents, cancellationToken).ConfigureAwait(false);
        var builder = _builders[s];
        builder.AddPage(page, contents, flags);
        if (builder.IsFull) await EnqueueAsync(s, builder.Build(round)).ConfigureAwait(false);
    }

    private static void AddRead(IPageContentReader reader, PageBatchBuilder builder, long page, PageResidency residency, byte flags)
    {
        Span<byte> contents = stackalloc byte[Page.Size];
        reader.ReadPage(page, residency, contents);
        builder.AddPage(page, contents, flags);
    }

    /// <summary>Sends every partly filled batch and waits until the receiver has applied everything sent so far.</summary>
    public async Task FlushAsync(uint round, CancellationToken cancellationToken)
    {
        var barriers = new Task[_senders.Length];
        for (int s = 0; s < _senders.Length; s++)
        {
            if (_builders[s].Count > 0) await EnqueueAsync(s, _builders[s].Build(round)).ConfigureAwait(false);
            var barrier = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            await WriteAsync(s, barrier).ConfigureAwait(false);
            barriers[s] = barrier.Task;
        }
        await Task.WhenAll(barriers).WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Flushes and closes every stream cleanly.</summary>
    public async Task CloseAsync(CancellationToken cancellationToken)
    {
        await FlushAsync(0, cancellationToken).ConfigureAwait(false);
        foreach (var q in _queues) q.Writer.TryComplete();
        await Task.WhenAll(_pumps).WaitAsync(cancellationToken).ConfigureAwait(false);
        var closing = new Task[_senders.Length];
        for (int i = 0; i < closing.Length; i++) closing[i] = _senders[i].CloseAsync(cancellationToken);
        await Task.WhenAll(closing).ConfigureAwait(false);
    }

    private ValueTask EnqueueAsync(int stream, EncodedBatch batch) => WriteAsync(stream, batch);

    private async ValueTask WriteAsync(int stream, object item)
    {
        try
        {
            await _queues[stream].Writer.WriteAsync(item, _stop.Token).ConfigureAwait(false);
        }
        catch (Exception) when (Volatile.Read(ref _fault) is { } fault)
        {
            (item as EncodedBatch)?.Dispose();
            throw new IOException($"page stream {stream} failed: {fault.Message}", fault);
        }
        catch
        {
            (item as EncodedBatch)?.Dispose();
            throw;
        }
    }

    private async Task PumpAsync(int index)
    {
        var sender = _senders[index];
        var reader = _queues[index].Reader;
        try
        {
            while (await reader.WaitToReadAsync(_stop.Token).ConfigureAwait(false))
                while (reader.TryRead(out var item))
                {
                    if (item is EncodedBatch batch) await sender.SendAsync(batch, _stop.Token).ConfigureAwait(false);
                    else
                    {
                        var barrier = (TaskCompletionSource)item;
                        try
                        {
                            await sender.FlushAsync(_stop.Token).ConfigureAwait(false);
                            barrier.TrySetResult();
                        }
                        catch (Exception e)
                        {
                            barrier.TrySetException(e);
                            throw;
                        }
                    }
                }
        }
        catch (Exception e)
        {
            Interlocked.CompareExchange(ref _fault, e, null);
            _queues[index].Writer.TryComplete(e);
            while (reader.TryRead(out var left))
                if (left is EncodedBatch b) b.Dispose();
                else ((TaskCompletionSource)left).TrySetException(e);
            throw;
        }
    }

    /// <summary>The first stream failure, if any.</summary>
    public Exception? Fault => Volatile.Read(ref _fault);

    /// <summary>Cancels the pumps and the calls (RST_STREAM when still open).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _stop.Cancel();
        foreach (var q in _queues) q.Writer.TryComplete();
        try { await Task.WhenAll(_pumps).ConfigureAwait(false); } catch { /* recorded in Fault */ }
        foreach (var s in _senders) await s.DisposeAsync().ConfigureAwait(false);
        foreach (var q in _queues)
            while (q.Reader.TryRead(out var left)) (left as EncodedBatch)?.Dispose();
        _stop.Dispose();
    }
}
