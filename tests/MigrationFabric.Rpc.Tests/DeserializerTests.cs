using System.Buffers;
using Google.Protobuf;
using MigrationFabric.Rpc.Server;
using MigrationFabric.Tests.Echo.V1;

namespace MigrationFabric.Rpc.Tests;

public sealed class DeserializerTests
{
    [Fact]
    public async Task Custom_deserializers_see_the_payload_in_place_and_their_failures_become_INTERNAL()
    {
        long serverSawBytes = 0;
        var serverSawSegments = 0;
        var serverChat = EchoService.Chat.WithDeserializers(requestDeserializer: payload =>
        {
            Interlocked.Add(ref serverSawBytes, payload.Length);
            var segments = 0;
            foreach (var _ in payload)
            {
                segments++;
            }

            Interlocked.Exchange(ref serverSawSegments, Math.Max(serverSawSegments, segments));
            var request = EchoRequest.Parser.ParseFrom(payload);
            if (request.Message == "corrupt")
            {
                throw new InvalidDataException("page 3 checksum mismatch");
            }

            return request;
        });
        var definition = RpcServiceDefinition.CreateBuilder(EchoService.Descriptor)
            .AddDuplexStreaming(serverChat, async (requests, responses, context) =>
            {
                while (await requests.MoveNext(context.CancellationToken))
                {
                    await responses.WriteAsync(new EchoReply { Message = requests.Current.Message, Payload = requests.Current.Payload });
                }
            })
            .Build();
        await using var server = new RpcServer();
        server.AddService(definition);
        await server.StartAsync();

        var clientSawBytes = 0L;
        var clientChat = EchoService.Chat.WithDeserializers(responseDeserializer: payload =>
        {
            Interlocked.Add(ref clientSawBytes, payload.Length);
            return EchoReply.Parser.ParseFrom(payload);
        });
        using var channel = new Client.RpcChannel(server.Address);
        var big = new EchoRequest { Message = "pages", Payload = ByteString.CopyFrom(new byte[256 * 1024]) };
        using (var call = channel.AsyncDuplexStreamingCall(clientChat))
        {
            await call.RequestStream.WriteAsync(big);
            Assert.True(await call.ResponseStream.MoveNext());
            Assert.Equal(big.Payload.Length, call.ResponseStream.Current.Payload.Length);
            await call.RequestStream.CompleteAsync();
            Assert.False(await call.ResponseStream.MoveNext());
        }

        Assert.Equal(big.CalculateSize(), Interlocked.Read(ref serverSawBytes));
        Assert.True(serverSawSegments > 1, "a 256 KiB payload arrives in several transport segments and is parsed from them in place");
        Assert.True(Interlocked.Read(ref clientSawBytes) > big.Payload.Length);

        using var failing = channel.AsyncDuplexStreamingCall(EchoService.Chat);
        // The server may end the call before the client's flush returns; then the write itself reports the status.
        var error = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            await failing.RequestStream.WriteAsync(new EchoRequest { Message = "corrupt" });
            await failing.ResponseStream.MoveNext();
        });
        Assert.Equal(StatusCode.Internal, error.StatusCode);
        Assert.Contains("page 3 checksum mismatch", error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void WithDeserializers_keeps_name_kind_and_descriptor()
    {
        var copy = EchoService.Say.WithDeserializers(requestDeserializer: p => new EchoRequest());
        Assert.Equal(EchoService.Say.FullName, copy.FullName);
        Assert.Equal(MethodType.Unary, copy.Type);
        Assert.Same(EchoService.Say.Descriptor, copy.Descriptor);
        Assert.NotNull(copy.RequestDeserializer(ReadOnlySequence<byte>.Empty));
    }
}
