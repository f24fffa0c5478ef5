using Google.Protobuf;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Rpc.Client;
using MigrationFabric.Rpc.Server;

namespace MigrationFabric.Rpc.Bench;

/// <summary>A Pages.PageStream server that applies nothing but counts and acknowledges every batch, and the sender side.</summary>
internal sealed class PageStreamBench : IAsyncDisposable
{
    private const int PageSize = 4096;

    private static readonly Method<PageStreamMessage, PageAck> PageStream =
        Method<PageStreamMessage, PageAck>.Create(PagesReflection.Descriptor.Services[0], "PageStream");

    private readonly RpcServer server;
    private readonly RpcChannel channel;
    private readonly int ackEvery;

    private PageStreamBench(RpcServer server, RpcChannel channel, int ackEvery)
    {
        this.server = server;
        this.channel = channel;
        this.ackEvery = ackEvery;
    }

    /// <summary>Starts the receiver; it acknowledges every <paramref name="ackEvery"/>-th batch and the last one.</summary>
    public static async Task<PageStreamBench> StartAsync(RpcServerOptions serverOptions, RpcChannelOptions channelOptions, int ackEvery)
    {
        var server = new RpcServer(serverOptions);
        server.AddService(RpcServiceDefinition.CreateBuilder(PagesReflection.Descriptor.Services[0])
            .AddDuplexStreaming<PageStreamMessage, PageAck>("PageStream", (requests, responses, context) => ReceiveAsync(requests, responses, context, ackEvery))
            .Build());
        await server.StartAsync();
        return new PageStreamBench(server, new RpcChannel(server.Address, channelOptions), ackEvery);
    }

    /// <summary>One batch of <paramref name="payloadBytes"/> of pages as the sender would build it (payload wrapped, not copied).</summary>
    public static PageStreamMessage CreateBatch(int payloadBytes)
    {
        var pages = payloadBytes / PageSize;
        var payload = new byte[pages * PageSize];
        Random.Shared.NextBytes(payload);
        var batch = new PageBatch { Sequence = 1, Round = 1, Payload = UnsafeByteOperations.UnsafeWrap(payload), Flags = ByteString.CopyFrom(new byte[pages]) };
        for (var i = 0; i < pages; i++)
        {
            batch.PageNumbers.Add((ulong)(1_000_000 + i));
            batch.Checksums.Add((ulong)i * 0x9E3779B97F4A7C15UL);
        }

        return new PageStreamMessage { Batch = batch };
    }

    /// <summary>Sends <paramref name="batchesPerStream"/> batches on each of <paramref name="streams"/> concurrent PageStream calls; returns elapsed seconds.</summary>
    public async Task<double> MoveAsync(PageStreamMessage batch, int batchesPerStream, int streams, CancellationToken ct)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var tasks = new Task[streams];
        for (var s = 0; s < streams; s++)
        {
            // Each stream gets its own message object: the writer mutates the sequence number.
            tasks[s] = SendOneAsync(batch.Clone(), batchesPerStream, ct);
        }

        await Task.WhenAll(tasks);
        return System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds;
    }

    private async Task SendOneAsync(PageStreamMessage message, int batches, CancellationToken ct)
    {
        using var call = channel.AsyncDuplexStreamingCall(PageStream, new CallOptions(CancellationToken: ct));
        var reader = Task.Run(async () =>
        {
            ulong acked = 0;
            while (await call.ResponseStream.MoveNext(ct))
            {
                acked = call.ResponseStream.Current.AckedThrough;
            }

            return acked;
        }, ct);
        for (var i = 1; i <= batches; i++)
        {
            message.Batch.Sequence = (ulong)i;
            await call.RequestStream.WriteAsync(message, ct);
        }

        await call.RequestStream.CompleteAsync();
        var last = await reader;
        if (last != (ulong)batches)
        {
            throw new InvalidOperationException($"receiver acknowledged through {last}, expected {batches}");
        }
    }

    private static async Task ReceiveAsync(IAsyncStreamReader<PageStreamMessage> requests, IServerStreamWriter<PageAck> responses, ServerCallContext context, int ackEvery)
    {
        ulong pages = 0;
        ulong lastAcked = 0;
        ulong lastSeen = 0;
        while (await requests.MoveNext(context.CancellationToken))
        {
            var batch = requests.Current.Batch;
            if (batch is null || batch.Payload.Length != batch.PageNumbers.Count * PageSize)
            {
                throw new RpcException(StatusCode.InvalidArgument, "bench: malformed batch");
            }

            pages += (ulong)batch.PageNumbers.Count;
            lastSeen = batch.Sequence;
            if (batch.Sequence % (ulong)ackEvery == 0)
            {
                await responses.WriteAsync(new PageAck { AckedThrough = batch.Sequence, Window = 64, PagesApplied = pages }, context.CancellationToken);
                lastAcked = batch.Sequence;
            }
        }

        if (lastSeen != lastAcked)
        {
            await responses.WriteAsync(new PageAck { AckedThrough = lastSeen, Window = 64, PagesApplied = pages }, context.CancellationToken);
        }
    }

    public async ValueTask DisposeAsync()
    {
        channel.Dispose();
        await server.DisposeAsync();
    }
}
