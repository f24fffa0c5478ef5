using MigrationFabric.Contracts.V1;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Tracking;
using MigrationFabric.Migration.Codec;
using MigrationFabric.Migration.DataPlane.FaultChannel;

namespace MigrationFabric.Migration.DataPlane;

/// <summary>The source's side of a post-copy: which pages the destination still lacks, served on demand ahead of the background push.</summary>
internal sealed class OutgoingMigration
{
    private readonly AsyncSignal _idle = new();
    private int _urgent;
    private long _hint = -1;
    private long _served;

    public OutgoingMigration(string migrationId, string vm, GuestMemory memory, AtomicPageBitmap pending)
    {
        MigrationId = migrationId;
        Vm = vm;
        Memory = memory;
        Pending = pending;
    }

    public string MigrationId { get; }

    public string Vm { get; }

    public GuestMemory Memory { get; }

    /// <summary>Pages not yet sent since switch-over (set bit = still to send).</summary>
    public AtomicPageBitmap Pending { get; }

    /// <summary>Pages served to remote faults (requested and prefetched).</summary>
    public long PagesServed => Volatile.Read(ref _served);

    /// <summary>Remote fault requests served.</summary>
    public long Requests => Volatile.Read(ref _requests);

    private long _requests;

    /// <summary>Where the background push should continue (just past the last fault's prefetch), or -1.</summary>
    public long TakeHint() => Interlocked.Exchange(ref _hint, -1);

    /// <summary>Waits while remote faults are being served and their replies written: they go first. Waits at most <paramref name="atMost"/>, so a reply whose completion is never reported cannot stall the push.</summary>
    public async ValueTask WaitForNoUrgentAsync(TimeSpan atMost, CancellationToken cancellationToken)
    {
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        while (true)
        {
            var next = _idle.Next;
            if (Volatile.Read(ref _urgent) == 0) return;
            var left = atMost - System.Diagnostics.Stopwatch.GetElapsedTime(start);
            if (left <= TimeSpan.Zero) return;
            try { await next.WaitAsync(left, cancellationToken).ConfigureAwait(false); }
            catch (TimeoutException) { return; }
        }
    }

    public bool HasUrgent => Volatile.Read(ref _urgent) != 0;

    /// <summary>Builds the reply to a fault; the caller calls <see cref="ReplyWritten"/> once the reply has left (until then the push holds off).</summary>
    /// <remarks>Throws (and is then done) on a page outside the VM (ArgumentOutOfRangeException) or a checksum kind this build does not know
    /// (<see cref="UnsupportedChecksumException"/>). The reply carries the kind the request names: the destination keeps those checksums as its digests.</remarks>
    public RemotePagesResponse Serve(RemotePagesRequest request)
    {
        long receivedNs = RemoteFaultSteps.NowNanoseconds();
        Interlocked.Increment(ref _urgent);
        try
        {
            var checksum = PageChecksums.FromWire(request.Checksum);
            int prefetch = (int)Math.Min(request.Prefetch, 256u);
            var builder = new PageBatchBuilder(Math.Min(1024, request.PageNumbers.Count + prefetch), checksum: checksum);
            long last = -1;
            foreach (ulong p in request.PageNumbers)
            {
                if (p >= (ulong)Memory.PageCount) throw new ArgumentOutOfRangeException(nameof(request), $"page {p} is outside the VM's {Memory.PageCount} pages.");
                if (builder.IsFull) break;
                Pending.TestAndClear((long)p);
                Add(builder, (long)p);
                last = (long)p;
            }
            // Pre-paging: the neighbours after the faulted page that the destination still lacks.
            for (long p = last + 1; p < Memory.PageCount && !builder.IsFull && p <= last + prefetch; p++)
                if (Pending.TestAndClear(p)) Add(builder, p);
            if (last >= 0) Volatile.Write(ref _hint, Math.Min(Memory.PageCount - 1, last + prefetch + 1));
            Interlocked.Add(ref _served, builder.Count);
            Interlocked.Increment(ref _requests);
            // The reply's buffers are not returned to the pool: the server serializes it after this returns.
            var response = new RemotePagesResponse { Batch = builder.Build(0).Batch, ReceivedAtNs = (ulong)receivedNs };
            long readNs = RemoteFaultSteps.NowNanoseconds();
            response.ReadAtNs = (ulong)readNs;
            Stats?.Read.Record(readNs - receivedNs);
            return response;
        }
        catch
        {
            ReplyWritten(0);
            throw;
        }
    }

    /// <summary>The fault channel serving this migration's faults (besides RemotePages calls), once started; whoever ends the post-copy disposes it.</summary>
    public FaultChannelServer? FaultChannel { get; set; }

    /// <summary>Where the serving steps are recorded (the agent's PagesService). Default null.</summary>
    public RemotePagesServing? Stats { get; set; }

    /// <summary>A reply from <see cref="Serve"/> has been written (or abandoned); <paramref name="readAtNs"/> is its ReadAtNs, 0 when not to be recorded.</summary>
    public void ReplyWritten(long readAtNs)
    {
        if (readAtNs > 0) Stats?.Write.Record(RemoteFaultSteps.NowNanoseconds() - readAtNs);
        if (Interlocked.Decrement(ref _urgent) == 0) _idle.Set();
    }

    private void Add(PageBatchBuilder builder, long page)
    {
        var residency = Memory.GetResidency(page);
        if (residency is PageResidency.Zero or PageResidency.Ballooned) builder.AddZeroPage(page, PageFlags.Urgent);
        else builder.AddPage(page, Memory.GetPageBytes(page), PageFlags.Urgent);
    }
}
