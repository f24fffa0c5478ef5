using Google.Protobuf;
using MigrationFabric.Rpc.Client;
using MigrationFabric.Rpc.Server;
using MigrationFabric.Tests.Echo.V1;

namespace MigrationFabric.Rpc.Tests;

public sealed class FrameEncoderTests
{
    private static RpcServiceDefinition EchoChat() =>
        RpcServiceDefinition.CreateBuilder(EchoService.Descriptor)
            .AddDuplexStreaming<EchoRequest, EchoReply>("Chat", async (requests, responses, context) =>
            {
                while (await requests.MoveNext(context.CancellationToken))
                {
                    await responses.WriteAsync(new EchoReply { Message = requests.Current.Message, Payload = requests.Current.Payload });
                }
            })
            .Build();

    // What a caller that lays messages out itself hands the channel: 5 free bytes, then the serialized message.
    private static Memory<byte> Framed(IMessage message)
    {
        var frame = new byte[5 + message.CalculateSize()];
        Array.Fill(frame, (byte)0xEE, 0, 5); // the channel must write the header itself
        message.WriteTo(frame.AsSpan(5));
        return frame;
    }

    [Fact]
    public async Task Encoded_frames_are_written_as_given_and_other_messages_are_serialized_as_usual()
    {
        await using var server = new RpcServer();
        server.AddService(EchoChat());
        await server.StartAsync();
        var big = new EchoRequest { Message = "framed", Payload = ByteString.CopyFrom(Enumerable.Range(0, 300_000).Select(i => (byte)i).ToArray()) };
        var plain = new EchoRequest { Message = "plain" };
        var encoded = 0;
        var chat = EchoService.Chat.WithRequestFrameEncoder(m =>
        {
            if (m.Message != "framed") return null;
            Interlocked.Increment(ref encoded);
            return Framed(m);
        });
        using var channel = new RpcChannel(server.Address);
        using var call = channel.AsyncDuplexStreamingCall(chat);

        await call.RequestStream.WriteAsync(big);
        await call.RequestStream.WriteAsync(plain);
        await call.RequestStream.WriteAsync(big);
        await call.RequestStream.CompleteAsync();

        var replies = new List<EchoReply>();
        while (await call.ResponseStream.MoveNext()) replies.Add(call.ResponseStream.Current);
        Assert.Equal(["framed", "plain", "framed"], replies.Select(r => r.Message));
        Assert.Equal(big.Payload, replies[0].Payload);
        Assert.Equal(big.Payload, replies[2].Payload);
        Assert.Equal(2, encoded);
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
    }

    [Fact]
    public async Task An_encoded_frame_over_the_send_limit_fails_RESOURCE_EXHAUSTED_and_a_headerless_one_is_refused()
    {
        await using var server = new RpcServer();
        server.AddService(EchoChat());
        await server.StartAsync();
        using var channel = new RpcChannel(server.Address, new RpcChannelOptions { MaxSendMessageSize = 1000 });

        using (var call = channel.AsyncDuplexStreamingCall(EchoService.Chat.WithRequestFrameEncoder(m => Framed(m))))
        {
            var error = await Assert.ThrowsAsync<RpcException>(() => call.RequestStream.WriteAsync(new EchoRequest { Payload = ByteString.CopyFrom(new byte[2000]) }));
            Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);
            Assert.Contains("maximum configured message size", error.Status.Detail, StringComparison.Ordinal);
        }

        using (var call = channel.AsyncDuplexStreamingCall(EchoService.Chat.WithRequestFrameEncoder(m => new byte[3])))
        {
            var error = await Assert.ThrowsAsync<InvalidOperationException>(() => call.RequestStream.WriteAsync(new EchoRequest { Message = "x" }));
            Assert.Contains("5-byte header", error.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void WithRequestFrameEncoder_keeps_the_method_and_its_deserializers()
    {
        var withDeserializer = EchoService.Chat.WithDeserializers(requestDeserializer: p => new EchoRequest { Message = "custom" });
        var both = withDeserializer.WithRequestFrameEncoder(m => null);
        Assert.Equal(EchoService.Chat.FullName, both.FullName);
        Assert.Equal(MethodType.DuplexStreaming, both.Type);
        Assert.Equal("custom", both.RequestDeserializer(System.Buffers.ReadOnlySequence<byte>.Empty).Message);
        Assert.NotNull(both.WithDeserializers(responseDeserializer: p => new EchoReply()).RequestFrameEncoder);
        Assert.Null(EchoService.Chat.RequestFrameEncoder);
    }
}
