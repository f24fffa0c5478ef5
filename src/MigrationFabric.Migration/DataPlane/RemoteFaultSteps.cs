using System.Diagnostics;
using MigrationFabric.Memory.Metrics;

namespace MigrationFabric.Migration.DataPlane;

/// <summary>Where a post-copy remote fault's time goes, one histogram (nanoseconds) per step, as the destination sees it.</summary>
/// <remarks>
/// The request and reply steps compare the source's monotonic clock (sent back in the reply) with the
/// destination's, so they are recorded only when both agents share one clock (same host, e.g. loopback); a
/// fault whose server times fall outside its own send..receive interval is left out of those two.
/// </remarks>
public sealed class RemoteFaultSteps
{
    /// <summary>Fault handler entered to the RemotePages request being handed to the channel (fault bookkeeping).</summary>
    public LatencyHistogram Issue { get; } = new();

    /// <summary>Request handed to the channel to the source's handler taking it (client write, wire, server read loop and dispatch).</summary>
    public LatencyHistogram Request { get; } = new();

    /// <summary>Source took the request to the reply's pages having been read (page read, pre-paging, encoding).</summary>
    public LatencyHistogram Read { get; } = new();

    /// <summary>Pages read at the source to the reply in the fault handler's hands (serialization, server write, wire, client read loop, continuation).</summary>
    public LatencyHistogram Reply { get; } = new();

    /// <summary>Reply in hand to every page of it installed (checksum verified) at the destination.</summary>
    public LatencyHistogram Install { get; } = new();

    /// <summary>The whole fault in the handler (what <see cref="IncomingMigration.RemoteFaultLatency"/> also records).</summary>
    public LatencyHistogram Total { get; } = new();

    internal static long NowNanoseconds() => ToNanoseconds(Stopwatch.GetTimestamp());

    internal static long ToNanoseconds(long timestamp) => (long)(timestamp * (1e9 / Stopwatch.Frequency));

    internal void Record(long enteredNs, long sentNs, long receivedAtSourceNs, long readAtSourceNs, long gotNs, long installedNs)
    {
        Issue.Record(sentNs - enteredNs);
        if (receivedAtSourceNs > 0 && sentNs <= receivedAtSourceNs && receivedAtSourceNs <= readAtSourceNs && readAtSourceNs <= gotNs)
        {
            Request.Record(receivedAtSourceNs - sentNs);
            Read.Record(readAtSourceNs - receivedAtSourceNs);
            Reply.Record(gotNs - readAtSourceNs);
        }
        Install.Record(installedNs - gotNs);
        Total.Record(installedNs - enteredNs);
    }
}

/// <summary>The source's side of serving remote faults (RemotePages for post-copy migrations), one histogram (nanoseconds) per step.</summary>
public sealed class RemotePagesServing
{
    /// <summary>Request taken to the reply's pages read and encoded.</summary>
    public LatencyHistogram Read { get; } = new();

    /// <summary>Pages read to the reply's last byte handed to the connection (Kestrel's response completion).</summary>
    public LatencyHistogram Write { get; } = new();
}
