using System.Diagnostics;
using System.Security.Cryptography;
using Google.Protobuf;
using MigrationFabric.Rpc.Client;
using MigrationFabric.Tests.Echo.V1;

namespace MigrationFabric.Rpc.Tests.Interop;

/// <summary>The stock grpc-js Echo server (tests/interop/server.js) for our client to call.</summary>
public sealed class GrpcJsServerFixture : IAsyncLifetime
{
    private GrpcJsServer? _server;
    private RpcChannel? _channel;

    public GrpcJsServer Server => _server ?? throw new InvalidOperationException("Fixture not started.");

    /// <summary>A channel whose receive limit fits the 16 MiB case (grpc-js's own limit there is 64 MiB).</summary>
    public RpcChannel Channel => _channel ?? throw new InvalidOperationException("Fixture not started.");

    public Uri Address => new($"http://127.0.0.1:{Server.Port}");

    public async Task InitializeAsync()
    {
        if (NodeInterop.Problem is not null)
        {
            // Every test is skipped (or, on CI, fails with the reason from NodeInterop.EnsureAvailable).
            return;
        }

        _server = await GrpcJsServer.StartAsync(TimeSpan.FromSeconds(60));
        _channel = new RpcChannel(Address, new RpcChannelOptions { MaxReceiveMessageSize = 64 * 1024 * 1024 });
    }

    public async Task DisposeAsync()
    {
        _channel?.Dispose();
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}

/// <summary>Our client (RpcChannel) against the stock grpc-js server: the same cases client.js runs against our server.</summary>
public sealed class OurClientInteropTests(GrpcJsServerFixture fixture) : IClassFixture<GrpcJsServerFixture>
{
    private const int MiB = 1024 * 1024;
    private static readonly TimeSpan Generous = TimeSpan.FromSeconds(30);

    private RpcChannel Channel
    {
        get
        {
            NodeInterop.EnsureAvailable();
            return fixture.Channel;
        }
    }

    [NodeFact]
    public async Task Unary_round_trip()
    {
        var payload = RandomNumberGenerator.GetBytes(1024);
        var reply = await Channel.AsyncUnaryCall(EchoService.Say, new EchoRequest { Message = "hello from C#", Payload = ByteString.CopyFrom(payload) });
        Assert.Equal("hello from C#", reply.Message);
        Assert.Equal(payload, reply.Payload.ToByteArray());
        Assert.Equal(0, reply.Index);
        Assert.Equal(1024, reply.ReceivedBytes);
    }

    [NodeFact]
    public async Task Unary_empty_request_and_reply()
    {
        var reply = await Channel.AsyncUnaryCall(EchoService.Say, new EchoRequest());
        Assert.Equal(new EchoReply(), reply);
    }

    [NodeFact]
    public async Task Unary_reply_sizes()
    {
        var sized = await Channel.AsyncUnaryCall(EchoService.Say, new EchoRequest { Payload = ByteString.CopyFromUtf8("x"), ReplyPayloadSize = 4096 });
        Assert.Equal(4096, sized.Payload.Length);
        var none = await Channel.AsyncUnaryCall(EchoService.Say, new EchoRequest { Payload = ByteString.CopyFromUtf8("x"), ReplyPayloadSize = -1 });
        Assert.True(none.Payload.IsEmpty);
    }

    [NodeFact]
    public async Task Server_stream()
    {
        using var call = Channel.AsyncServerStreamingCall(EchoService.Expand, new EchoRequest { Message = "many", Count = 5, ReplyPayloadSize = 100 });
        var replies = await ReadAllAsync(call.ResponseStream);
        Assert.Equal([0, 1, 2, 3, 4], replies.Select(r => r.Index));
        Assert.All(replies, r => Assert.Equal(("many", 100), (r.Message, r.Payload.Length)));
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
    }

    [NodeFact]
    public async Task Server_stream_with_no_replies()
    {
        using var call = Channel.AsyncServerStreamingCall(EchoService.Expand, new EchoRequest { Count = 0 });
        Assert.Empty(await ReadAllAsync(call.ResponseStream));
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
    }

    [NodeFact]
    public async Task Client_stream()
    {
        using var call = Channel.AsyncClientStreamingCall(EchoService.Collect);
        for (var i = 0; i < 10; i++)
        {
            await call.RequestStream.WriteAsync(new EchoRequest { Message = $"part {i}", Payload = ByteString.CopyFrom(new byte[1000]), ReplyPayloadSize = -1 });
        }

        await call.RequestStream.CompleteAsync();
        var reply = await call;
        Assert.Equal((10, 10000L), (reply.Index, reply.ReceivedBytes));
    }

    [NodeFact]
    public async Task Client_stream_with_no_requests()
    {
        using var call = Channel.AsyncClientStreamingCall(EchoService.Collect);
        await call.RequestStream.CompleteAsync();
        var reply = await call;
        Assert.Equal((0, 0L), (reply.Index, reply.ReceivedBytes));
    }

    [NodeFact]
    public async Task Duplex_ping_pong()
    {
        using var call = Channel.AsyncDuplexStreamingCall(EchoService.Chat);
        long sent = 0;
        for (var i = 0; i < 10; i++)
        {
            var payload = RandomNumberGenerator.GetBytes(100 + i);
            sent += payload.Length;
            await call.RequestStream.WriteAsync(new EchoRequest { Message = $"ping {i}", Payload = ByteString.CopyFrom(payload) });
            Assert.True(await call.ResponseStream.MoveNext().WaitAsync(Generous), $"stream ended before reply {i}");
            var reply = call.ResponseStream.Current;
            Assert.Equal((i, $"ping {i}", sent), (reply.Index, reply.Message, reply.ReceivedBytes));
            Assert.Equal(payload, reply.Payload.ToByteArray());
        }

        await call.RequestStream.CompleteAsync();
        Assert.False(await call.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
    }

    [NodeFact]
    public async Task Unary_past_its_deadline_fails_with_DEADLINE_EXCEEDED()
    {
        var watch = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<RpcException>(() =>
            Channel.AsyncUnaryCall(EchoService.Say, new EchoRequest { DelayMs = 10000 }, new CallOptions().WithTimeout(TimeSpan.FromMilliseconds(300))).ResponseAsync);
        Assert.Equal(StatusCode.DeadlineExceeded, e.StatusCode);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(8), $"the deadline took {watch.Elapsed} to fire");
    }

    [NodeFact]
    public async Task Server_stream_past_its_deadline_fails_with_DEADLINE_EXCEEDED()
    {
        using var call = Channel.AsyncServerStreamingCall(EchoService.Expand, new EchoRequest { Count = 3, DelayMs = 10000 }, new CallOptions().WithTimeout(TimeSpan.FromMilliseconds(300)));
        var e = await Assert.ThrowsAsync<RpcException>(() => ReadAllAsync(call.ResponseStream));
        Assert.Equal(StatusCode.DeadlineExceeded, e.StatusCode);
    }

    [NodeFact]
    public async Task Duplex_past_its_deadline_fails_with_DEADLINE_EXCEEDED()
    {
        using var call = Channel.AsyncDuplexStreamingCall(EchoService.Chat, new CallOptions().WithTimeout(TimeSpan.FromMilliseconds(300)));
        await call.RequestStream.WriteAsync(new EchoRequest { Message = "slow", DelayMs = 10000 });
        var e = await Assert.ThrowsAsync<RpcException>(() => ReadAllAsync(call.ResponseStream));
        Assert.Equal(StatusCode.DeadlineExceeded, e.StatusCode);
    }

    [NodeFact]
    public async Task Error_status_and_message_arrive_intact()
    {
        const string message = "page 42 not found: ünïcödé ✓ 100% (with %25 and\ttab)";
        var e = await Assert.ThrowsAsync<RpcException>(() =>
            Channel.AsyncUnaryCall(EchoService.Say, new EchoRequest { FailCode = (int)StatusCode.NotFound, FailMessage = message }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, e.StatusCode);
        Assert.Equal(message, e.Status.Detail);
    }

    [NodeFact]
    public async Task Every_error_code_arrives_as_sent()
    {
        for (var code = 1; code <= 16; code++)
        {
            var e = await Assert.ThrowsAsync<RpcException>(() =>
                Channel.AsyncUnaryCall(EchoService.Say, new EchoRequest { FailCode = code, FailMessage = $"code {code}" }).ResponseAsync);
            Assert.Equal(((StatusCode)code, $"code {code}"), (e.StatusCode, e.Status.Detail));
        }
    }

    [NodeFact]
    public async Task Server_stream_fails_after_its_replies()
    {
        using var call = Channel.AsyncServerStreamingCall(EchoService.Expand, new EchoRequest { Count = 3, FailCode = (int)StatusCode.Aborted, FailMessage = "stopped after three" });
        var seen = 0;
        var e = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            while (await call.ResponseStream.MoveNext())
            {
                seen++;
            }
        });
        Assert.Equal((StatusCode.Aborted, "stopped after three", 3), (e.StatusCode, e.Status.Detail, seen));
    }

    [NodeFact]
    public async Task Client_stream_fails_with_the_status_the_server_chose()
    {
        using var call = Channel.AsyncClientStreamingCall(EchoService.Collect);
        await call.RequestStream.WriteAsync(new EchoRequest { Message = "ok" });
        await call.RequestStream.WriteAsync(new EchoRequest { FailCode = (int)StatusCode.InvalidArgument, FailMessage = "bad part" });
        try
        {
            await call.RequestStream.CompleteAsync();
        }
        catch (RpcException)
        {
            // The server may have ended the call before the half-close went out; the status below is what counts.
        }

        var e = await Assert.ThrowsAsync<RpcException>(() => call.ResponseAsync);
        Assert.Equal((StatusCode.InvalidArgument, "bad part"), (e.StatusCode, e.Status.Detail));
    }

    [NodeFact]
    public async Task Duplex_fails_after_replying_to_earlier_requests()
    {
        using var call = Channel.AsyncDuplexStreamingCall(EchoService.Chat);
        await call.RequestStream.WriteAsync(new EchoRequest { Message = "first" });
        await call.RequestStream.WriteAsync(new EchoRequest { FailCode = (int)StatusCode.FailedPrecondition, FailMessage = "second fails" });
        var replies = new List<EchoReply>();
        var e = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            while (await call.ResponseStream.MoveNext())
            {
                replies.Add(call.ResponseStream.Current);
            }
        });
        Assert.Equal((StatusCode.FailedPrecondition, "second fails"), (e.StatusCode, e.Status.Detail));
        Assert.Equal(["first"], replies.Select(r => r.Message));
    }

    [NodeFact]
    public async Task Metadata_travels_both_ways_including_binary()
    {
        byte[] binary = [0x00, 0x01, 0x02, 0x7f, 0x80, 0xfe, 0xff];
        var headers = new Metadata().Add("x-mf-text", "hello, metadata").Add("x-mf-data-bin", binary);
        using var call = Channel.AsyncUnaryCall(EchoService.Say,
            new EchoRequest { Message = "md", EchoMetadataKeys = { "x-mf-text", "x-mf-data-bin", "x-mf-absent" } },
            new CallOptions(Headers: headers));
        var reply = await call;
        Assert.Equal("hello, metadata", reply.Metadata["x-mf-text"]);
        Assert.Equal(Convert.ToBase64String(binary), reply.Metadata["x-mf-data-bin"]);
        Assert.False(reply.Metadata.ContainsKey("x-mf-absent"));
        Assert.Equal("grpc-js", (await call.ResponseHeadersAsync).GetValue("x-echo-server"));
        var trailers = call.GetTrailers();
        Assert.Equal("hello, metadata", trailers.GetValue("echo-x-mf-text"));
        Assert.Equal(binary, trailers.GetValueBytes("echo-x-mf-data-bin"));
        Assert.Null(trailers.Get("echo-x-mf-absent"));
    }

    [NodeFact]
    public async Task Trailers_arrive_with_an_error_status()
    {
        var e = await Assert.ThrowsAsync<RpcException>(() => Channel.AsyncUnaryCall(EchoService.Say,
            new EchoRequest { FailCode = (int)StatusCode.NotFound, FailMessage = "nope", EchoMetadataKeys = { "x-mf-text" } },
            new CallOptions(Headers: new Metadata().Add("x-mf-text", "on error"))).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, e.StatusCode);
        Assert.Equal("on error", e.Trailers.GetValue("echo-x-mf-text"));
    }

    [NodeFact]
    public async Task A_16_MiB_message_round_trips()
    {
        var payload = RandomNumberGenerator.GetBytes(16 * MiB);
        var reply = await Channel.AsyncUnaryCall(EchoService.Say, new EchoRequest { Message = "big", Payload = UnsafeByteOperations.UnsafeWrap(payload) });
        Assert.Equal(16 * MiB, reply.Payload.Length);
        Assert.Equal(SHA256.HashData(payload), SHA256.HashData(reply.Payload.Span));
        Assert.Equal(16L * MiB, reply.ReceivedBytes);
    }

    [NodeFact]
    public async Task A_request_over_the_servers_limit_gets_RESOURCE_EXHAUSTED_and_the_channel_stays_usable()
    {
        // grpc-js runs with a 64 MiB receive limit (tests/interop/lib/echo.js).
        var e = await Assert.ThrowsAsync<RpcException>(() => Channel.AsyncUnaryCall(EchoService.Say,
            new EchoRequest { Payload = UnsafeByteOperations.UnsafeWrap(new byte[65 * MiB]), ReplyPayloadSize = -1 }).ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
        var reply = await Channel.AsyncUnaryCall(EchoService.Say, new EchoRequest { Message = "still here" });
        Assert.Equal("still here", reply.Message);
    }

    [NodeFact]
    public async Task A_reply_over_our_receive_limit_gets_RESOURCE_EXHAUSTED()
    {
        NodeInterop.EnsureAvailable();
        using var small = new RpcChannel(fixture.Address, new RpcChannelOptions { MaxReceiveMessageSize = MiB });
        var e = await Assert.ThrowsAsync<RpcException>(() => small.AsyncUnaryCall(EchoService.Say, new EchoRequest { ReplyPayloadSize = 2 * MiB }).ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
        Assert.Contains(MiB.ToString(System.Globalization.CultureInfo.InvariantCulture), e.Status.Detail, StringComparison.Ordinal);
    }

    [NodeFact]
    public async Task A_1_GiB_duplex_stream_arrives_whole()
    {
        // 1024 x 1 MiB up, a small acknowledgement per request down; the writer and reader run on their own tasks.
        const int total = 1024;
        var chunk = new byte[MiB];
        Random.Shared.NextBytes(chunk);
        var payload = UnsafeByteOperations.UnsafeWrap(chunk);
        using var call = Channel.AsyncDuplexStreamingCall(EchoService.Chat);
        var writer = Task.Run(async () =>
        {
            for (var i = 0; i < total; i++)
            {
                await call.RequestStream.WriteAsync(new EchoRequest { Payload = payload, ReplyPayloadSize = -1 });
            }

            await call.RequestStream.CompleteAsync();
        });
        var replies = 0;
        while (await call.ResponseStream.MoveNext())
        {
            var reply = call.ResponseStream.Current;
            Assert.Equal((replies, (replies + 1L) * MiB), (reply.Index, reply.ReceivedBytes));
            replies++;
        }

        await writer;
        Assert.Equal(total, replies);
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
    }

    [NodeFact]
    public async Task A_1_GiB_server_stream_arrives_whole()
    {
        const int total = 1024;
        using var call = Channel.AsyncServerStreamingCall(EchoService.Expand, new EchoRequest { Count = total, ReplyPayloadSize = MiB });
        var count = 0;
        long bytes = 0;
        while (await call.ResponseStream.MoveNext())
        {
            var reply = call.ResponseStream.Current;
            Assert.Equal(count, reply.Index);
            bytes += reply.Payload.Length;
            count++;
        }

        Assert.Equal((total, (long)total * MiB), (count, bytes));
    }

    [NodeFact]
    public async Task Cancelling_a_unary_call_fails_it_with_CANCELLED_and_the_channel_stays_usable()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        var watch = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<RpcException>(() =>
            Channel.AsyncUnaryCall(EchoService.Say, new EchoRequest { DelayMs = 10000 }, new CallOptions(CancellationToken: cts.Token)).ResponseAsync);
        Assert.Equal(StatusCode.Cancelled, e.StatusCode);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(8), $"cancellation took {watch.Elapsed}");
        Assert.Equal("after cancel", (await Channel.AsyncUnaryCall(EchoService.Say, new EchoRequest { Message = "after cancel" })).Message);
    }

    [NodeFact]
    public async Task Cancelling_a_long_server_stream_stops_it()
    {
        using var cts = new CancellationTokenSource();
        using var call = Channel.AsyncServerStreamingCall(EchoService.Expand, new EchoRequest { Count = 1_000_000, ReplyPayloadSize = 1024 }, new CallOptions(CancellationToken: cts.Token));
        var seen = 0;
        var e = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            while (await call.ResponseStream.MoveNext())
            {
                if (++seen == 10)
                {
                    await cts.CancelAsync();
                }
            }
        });
        Assert.Equal(StatusCode.Cancelled, e.StatusCode);
        Assert.InRange(seen, 10, 999_999);
    }

    [NodeFact]
    public async Task Cancelling_a_duplex_call_fails_it_with_CANCELLED()
    {
        using var cts = new CancellationTokenSource();
        using var call = Channel.AsyncDuplexStreamingCall(EchoService.Chat, new CallOptions(CancellationToken: cts.Token));
        await call.RequestStream.WriteAsync(new EchoRequest { Message = "a" });
        await call.RequestStream.WriteAsync(new EchoRequest { Message = "b", DelayMs = 10000 });
        Assert.True(await call.ResponseStream.MoveNext().WaitAsync(Generous));
        Assert.Equal("a", call.ResponseStream.Current.Message);
        cts.CancelAfter(100);
        var e = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext().WaitAsync(Generous));
        Assert.Equal(StatusCode.Cancelled, e.StatusCode);
    }

    [NodeFact]
    public async Task Unknown_method_and_unknown_service_get_UNIMPLEMENTED()
    {
        var method = new Method<EchoRequest, EchoReply>(MethodType.Unary, "mftest.v1.Echo", "NoSuchMethod");
        var e = await Assert.ThrowsAsync<RpcException>(() => Channel.AsyncUnaryCall(method, new EchoRequest()).ResponseAsync);
        Assert.Equal(StatusCode.Unimplemented, e.StatusCode);
        var service = new Method<EchoRequest, EchoReply>(MethodType.Unary, "mftest.v1.NoSuchService", "Say");
        e = await Assert.ThrowsAsync<RpcException>(() => Channel.AsyncUnaryCall(service, new EchoRequest()).ResponseAsync);
        Assert.Equal(StatusCode.Unimplemented, e.StatusCode);
    }

    [NodeFact]
    public async Task Concurrent_calls_from_many_threads_share_one_channel()
    {
        // 64 unary calls and 8 duplex streams at once, started from thread-pool threads.
        var unary = Enumerable.Range(0, 64).Select(i => Task.Run(async () =>
        {
            var payload = RandomNumberGenerator.GetBytes(1 + (i * 997));
            var reply = await Channel.AsyncUnaryCall(EchoService.Say, new EchoRequest { Message = $"c{i}", Payload = ByteString.CopyFrom(payload), DelayMs = i % 5 });
            Assert.Equal($"c{i}", reply.Message);
            Assert.Equal(payload, reply.Payload.ToByteArray());
        }));
        var duplex = Enumerable.Range(0, 8).Select(s => Task.Run(async () =>
        {
            using var call = Channel.AsyncDuplexStreamingCall(EchoService.Chat);
            var reader = Task.Run(() => ReadAllAsync(call.ResponseStream));
            for (var i = 0; i < 20; i++)
            {
                await call.RequestStream.WriteAsync(new EchoRequest { Message = $"s{s}m{i}", Payload = ByteString.CopyFrom(new byte[4096]) });
            }

            await call.RequestStream.CompleteAsync();
            var replies = await reader;
            Assert.Equal(Enumerable.Range(0, 20).Select(i => $"s{s}m{i}"), replies.Select(r => r.Message));
        }));
        await Task.WhenAll(unary.Concat(duplex)).WaitAsync(TimeSpan.FromMinutes(2));
    }

    private static async Task<List<EchoReply>> ReadAllAsync(IAsyncStreamReader<EchoReply> stream)
    {
        var replies = new List<EchoReply>();
        while (await stream.MoveNext())
        {
            replies.Add(stream.Current);
        }

        return replies;
    }
}
