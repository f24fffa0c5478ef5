using Google.Protobuf;
using MigrationFabric.Rpc.Server;
using MigrationFabric.Tests.Echo.V1;

namespace MigrationFabric.Rpc.Tests;

/// <summary>The C# implementation of mftest.v1.Echo that the Rpc tests, the interop suite and the benchmarks serve.</summary>
public sealed class EchoService
{
    /// <summary>The generated descriptor of mftest.v1.Echo.</summary>
    public static Google.Protobuf.Reflection.ServiceDescriptor Descriptor => EchoReflection.Descriptor.Services[0];

    /// <summary>Client-side method objects.</summary>
    public static readonly Method<EchoRequest, EchoReply> Say = Method<EchoRequest, EchoReply>.Create(Descriptor, "Say");

    /// <summary>Client-side method objects.</summary>
    public static readonly Method<EchoRequest, EchoReply> Expand = Method<EchoRequest, EchoReply>.Create(Descriptor, "Expand");

    /// <summary>Client-side method objects.</summary>
    public static readonly Method<EchoRequest, EchoReply> Collect = Method<EchoRequest, EchoReply>.Create(Descriptor, "Collect");

    /// <summary>Client-side method objects.</summary>
    public static readonly Method<EchoRequest, EchoReply> Chat = Method<EchoRequest, EchoReply>.Create(Descriptor, "Chat");

    /// <summary>Set when a handler's cancellation token fires (observed by cancellation tests).</summary>
    public TaskCompletionSource<ServerCallContext> Cancelled { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Set when a handler starts waiting out a request's delay_ms (so tests cancel a call the server is surely running).</summary>
    public TaskCompletionSource<ServerCallContext> Delaying { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>The service definition bound to this instance.</summary>
    public RpcServiceDefinition CreateDefinition() =>
        RpcServiceDefinition.CreateBuilder(Descriptor)
            .AddUnary<EchoRequest, EchoReply>("Say", SayAsync)
            .AddServerStreaming<EchoRequest, EchoReply>("Expand", ExpandAsync)
            .AddClientStreaming<EchoRequest, EchoReply>("Collect", CollectAsync)
            .AddDuplexStreaming<EchoRequest, EchoReply>("Chat", ChatAsync)
            .Build();

    private async Task<EchoReply> SayAsync(EchoRequest request, ServerCallContext context)
    {
        await PrepareAsync(request, context).ConfigureAwait(false);
        return Reply(request, context, 0, request.Payload.Length);
    }

    private async Task ExpandAsync(EchoRequest request, IServerStreamWriter<EchoReply> responses, ServerCallContext context)
    {
        await PrepareAsync(request, context, failNow: false).ConfigureAwait(false);
        for (var i = 0; i < request.Count; i++)
        {
            await responses.WriteAsync(Reply(request, context, i, request.Payload.Length), context.CancellationToken).ConfigureAwait(false);
        }

        Fail(request);
    }

    private async Task<EchoReply> CollectAsync(IAsyncStreamReader<EchoRequest> requests, ServerCallContext context)
    {
        var count = 0;
        long bytes = 0;
        EchoRequest? last = null;
        while (await requests.MoveNext(context.CancellationToken).ConfigureAwait(false))
        {
            last = requests.Current;
            count++;
            bytes += last.Payload.Length;
            await PrepareAsync(last, context).ConfigureAwait(false);
        }

        var reply = last is null ? new EchoReply() : Reply(last, context, count, bytes);
        reply.Index = count;
        reply.ReceivedBytes = bytes;
        return reply;
    }

    private async Task ChatAsync(IAsyncStreamReader<EchoRequest> requests, IServerStreamWriter<EchoReply> responses, ServerCallContext context)
    {
        var index = 0;
        long bytes = 0;
        while (await requests.MoveNext(context.CancellationToken).ConfigureAwait(false))
        {
            var request = requests.Current;
            bytes += request.Payload.Length;
            await PrepareAsync(request, context).ConfigureAwait(false);
            await responses.WriteAsync(Reply(request, context, index++, bytes), context.CancellationToken).ConfigureAwait(false);
        }
    }

    private async Task PrepareAsync(EchoRequest request, ServerCallContext context, bool failNow = true)
    {
        foreach (var key in request.EchoMetadataKeys)
        {
            var value = context.RequestHeaders.GetValue(key);
            if (value is not null)
            {
                context.ResponseTrailers.Add("echo-" + key, value);
            }
        }

        if (request.DelayMs > 0)
        {
            Delaying.TrySetResult(context);
            try
            {
                await Task.Delay(request.DelayMs, context.CancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                Cancelled.TrySetResult(context);
                throw;
            }
        }

        if (failNow)
        {
            Fail(request);
        }
    }

    private static void Fail(EchoRequest request)
    {
        if (request.FailCode != 0)
        {
            throw new RpcException((StatusCode)request.FailCode, request.FailMessage);
        }
    }

    private static EchoReply Reply(EchoRequest request, ServerCallContext context, int index, long receivedBytes)
    {
        var reply = new EchoReply
        {
            Message = request.Message,
            Index = index,
            ReceivedBytes = receivedBytes,
        };
        reply.Payload = request.ReplyPayloadSize switch
        {
            > 0 => UnsafeByteOperations.UnsafeWrap(new byte[request.ReplyPayloadSize]),
            < 0 => ByteString.Empty,
            _ => request.Payload,
        };
        foreach (var key in request.EchoMetadataKeys)
        {
            var value = context.RequestHeaders.GetValue(key);
            if (value is not null)
            {
                reply.Metadata[key] = value;
            }
        }

        return reply;
    }
}
