using Google.Protobuf;
using MigrationFabric.Rpc.Client;
using MigrationFabric.Tests.Echo.V1;

namespace MigrationFabric.Rpc.Tests;

public sealed class CallKindTests : IClassFixture<EchoServerFixture>
{
    private readonly RpcChannel _channel;

    public CallKindTests(EchoServerFixture fixture)
    {
        _channel = fixture.Server.Channel;
    }

    [Fact]
    public async Task Unary_call_returns_the_reply_and_an_OK_status()
    {
        using var call = _channel.AsyncUnaryCall(EchoService.Say, new EchoRequest { Message = "hello", Payload = ByteString.CopyFromUtf8("abc") });
        var reply = await call;
        Assert.Equal("hello", reply.Message);
        Assert.Equal("abc", reply.Payload.ToStringUtf8());
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
    }

    [Fact]
    public async Task Server_streaming_call_returns_every_reply_in_order()
    {
        using var call = _channel.AsyncServerStreamingCall(EchoService.Expand, new EchoRequest { Message = "x", Count = 5 });
        var indexes = new List<int>();
        await foreach (var reply in call.ResponseStream.ReadAllAsync())
        {
            Assert.Equal("x", reply.Message);
            indexes.Add(reply.Index);
        }

        Assert.Equal(new[] { 0, 1, 2, 3, 4 }, indexes);
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
    }

    [Fact]
    public async Task Server_streaming_call_with_no_replies_ends_cleanly()
    {
        using var call = _channel.AsyncServerStreamingCall(EchoService.Expand, new EchoRequest { Count = 0 });
        Assert.False(await call.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
    }

    [Fact]
    public async Task Client_streaming_call_sees_every_request()
    {
        using var call = _channel.AsyncClientStreamingCall(EchoService.Collect);
        for (var i = 0; i < 3; i++)
        {
            await call.RequestStream.WriteAsync(new EchoRequest { Message = "m" + i, Payload = ByteString.CopyFrom(new byte[10]) });
        }

        await call.RequestStream.CompleteAsync();
        var reply = await call;
        Assert.Equal(3, reply.Index);
        Assert.Equal(30, reply.ReceivedBytes);
        Assert.Equal("m2", reply.Message);
    }

    [Fact]
    public async Task Client_streaming_call_with_no_requests_gets_a_reply()
    {
        using var call = _channel.AsyncClientStreamingCall(EchoService.Collect);
        await call.RequestStream.CompleteAsync();
        var reply = await call;
        Assert.Equal(0, reply.Index);
    }

    [Fact]
    public async Task Client_streaming_call_failed_by_the_server_reports_its_status_to_later_writes()
    {
        using var call = _channel.AsyncClientStreamingCall(EchoService.Collect);
        try
        {
            await call.RequestStream.WriteAsync(new EchoRequest { FailCode = (int)StatusCode.InvalidArgument, FailMessage = "bad batch" });
        }
        catch (RpcException early)
        {
            // The server may end the call before this write's flush returns; the write then carries the status.
            Assert.Equal(StatusCode.InvalidArgument, early.StatusCode);
        }

        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Equal("bad batch", error.Status.Detail);
        var writeError = await Assert.ThrowsAsync<RpcException>(() => call.RequestStream.WriteAsync(new EchoRequest()));
        Assert.Equal(StatusCode.InvalidArgument, writeError.StatusCode);
    }

    [Fact]
    public async Task Writing_after_completing_the_request_stream_is_refused()
    {
        using var call = _channel.AsyncDuplexStreamingCall(EchoService.Chat);
        await call.RequestStream.CompleteAsync();
        await Assert.ThrowsAsync<InvalidOperationException>(() => call.RequestStream.WriteAsync(new EchoRequest()));
        Assert.False(await call.ResponseStream.MoveNext());
    }

    [Fact]
    public async Task Duplex_call_answers_each_request_as_it_arrives()
    {
        using var call = _channel.AsyncDuplexStreamingCall(EchoService.Chat);
        for (var i = 0; i < 4; i++)
        {
            await call.RequestStream.WriteAsync(new EchoRequest { Message = "ping" + i, Payload = ByteString.CopyFrom(new byte[100]) });
            Assert.True(await call.ResponseStream.MoveNext());
            Assert.Equal("ping" + i, call.ResponseStream.Current.Message);
            Assert.Equal(i, call.ResponseStream.Current.Index);
            Assert.Equal((i + 1) * 100, call.ResponseStream.Current.ReceivedBytes);
        }

        await call.RequestStream.CompleteAsync();
        Assert.False(await call.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
    }

    [Fact]
    public async Task Large_messages_cross_intact_both_ways()
    {
        var payload = new byte[3 * 1024 * 1024];
        Random.Shared.NextBytes(payload);
        using var call = _channel.AsyncDuplexStreamingCall(EchoService.Chat);
        await call.RequestStream.WriteAsync(new EchoRequest { Payload = ByteString.CopyFrom(payload) });
        Assert.True(await call.ResponseStream.MoveNext());
        Assert.True(call.ResponseStream.Current.Payload.Span.SequenceEqual(payload));
        await call.RequestStream.CompleteAsync();
        Assert.False(await call.ResponseStream.MoveNext());
    }

    [Fact]
    public async Task Many_concurrent_calls_on_real_threads_all_succeed()
    {
        var unary = Enumerable.Range(0, 50).Select(i => Task.Run(async () =>
        {
            var reply = await _channel.AsyncUnaryCall(EchoService.Say, new EchoRequest { Message = "u" + i });
            Assert.Equal("u" + i, reply.Message);
        }));
        var duplex = Enumerable.Range(0, 4).Select(s => Task.Run(async () =>
        {
            using var call = _channel.AsyncDuplexStreamingCall(EchoService.Chat);
            var reader = Task.Run(async () =>
            {
                var n = 0;
                while (await call.ResponseStream.MoveNext())
                {
                    Assert.Equal(n++, call.ResponseStream.Current.Index);
                }

                return n;
            });
            for (var i = 0; i < 100; i++)
            {
                await call.RequestStream.WriteAsync(new EchoRequest { Payload = ByteString.CopyFrom(new byte[1000]) });
            }

            await call.RequestStream.CompleteAsync();
            Assert.Equal(100, await reader);
        }));
        await Task.WhenAll(unary.Concat(duplex));
    }

    [Fact]
    public async Task Streams_cancelled_disposed_or_abandoned_at_random_leave_the_server_healthy()
    {
        var random = new Random(7);
        var plans = Enumerable.Range(0, 60).Select(_ => random.Next(4)).ToArray();
        await Task.WhenAll(plans.Select((plan, i) => Task.Run(async () =>
        {
            using var cts = new CancellationTokenSource();
            var call = _channel.AsyncDuplexStreamingCall(EchoService.Chat, new CallOptions(CancellationToken: cts.Token));
            try
            {
                await call.RequestStream.WriteAsync(new EchoRequest { Message = "s" + i, Payload = ByteString.CopyFrom(new byte[2048]) });
                Assert.True(await call.ResponseStream.MoveNext());
                switch (plan)
                {
                    case 0:
                        cts.Cancel();
                        var cancelled = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext());
                        Assert.Equal(StatusCode.Cancelled, cancelled.StatusCode);
                        break;
                    case 1:
                        call.Dispose();
                        break;
                    case 2:
                        await call.RequestStream.WriteAsync(new EchoRequest { Message = "more" }); // then abandoned mid-stream
                        call.Dispose();
                        break;
                    default:
                        await call.RequestStream.CompleteAsync();
                        Assert.False(await call.ResponseStream.MoveNext());
                        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
                        break;
                }
            }
            finally
            {
                call.Dispose();
            }
        })));

        Assert.Equal("still fine", (await _channel.AsyncUnaryCall(EchoService.Say, new EchoRequest { Message = "still fine" })).Message);
    }
}
