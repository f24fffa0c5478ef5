using System.Net;
using Google.Protobuf;
using MigrationFabric.Rpc.Client;
using MigrationFabric.Rpc.Server;
using MigrationFabric.Tests.Echo.V1;

namespace MigrationFabric.Rpc.Tests;

public sealed class LimitsAndMalformedTests : IAsyncLifetime
{
    private RpcTestServer _server = null!;

    public async Task InitializeAsync() =>
        _server = await RpcTestServer.StartAsync(new RpcServerOptions { MaxReceiveMessageSize = 64 * 1024, MaxSendMessageSize = 128 * 1024 });

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task Server_rejects_a_request_above_its_receive_limit_with_RESOURCE_EXHAUSTED()
    {
        var request = new EchoRequest { Payload = ByteString.CopyFrom(new byte[100 * 1024]) };
        var error = await Assert.ThrowsAsync<RpcException>(() => _server.Channel.AsyncUnaryCall(EchoService.Say, request).ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);
        Assert.Contains(request.CalculateSize().ToString(System.Globalization.CultureInfo.InvariantCulture), error.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("65536", error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Server_refuses_to_send_a_response_above_its_send_limit()
    {
        var error = await Assert.ThrowsAsync<RpcException>(() => _server.Channel.AsyncUnaryCall(EchoService.Say, new EchoRequest { ReplyPayloadSize = 200 * 1024 }).ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);
        Assert.Contains("131072", error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Client_rejects_a_response_above_its_receive_limit()
    {
        using var channel = _server.CreateChannel(new RpcChannelOptions { MaxReceiveMessageSize = 1024 });
        using var call = channel.AsyncDuplexStreamingCall(EchoService.Chat);
        await call.RequestStream.WriteAsync(new EchoRequest { ReplyPayloadSize = 4096 });
        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);
        Assert.Contains("1024", error.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("Received message larger than max", error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Client_refuses_to_send_a_request_above_its_send_limit()
    {
        using var channel = _server.CreateChannel(new RpcChannelOptions { MaxSendMessageSize = 1000 });
        var big = new EchoRequest { Payload = ByteString.CopyFrom(new byte[2000]) };
        var error = await Assert.ThrowsAsync<RpcException>(() => channel.AsyncUnaryCall(EchoService.Say, big).ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);
        Assert.Contains("1000", error.Status.Detail, StringComparison.Ordinal);

        using var stream = channel.AsyncClientStreamingCall(EchoService.Collect);
        var writeError = await Assert.ThrowsAsync<RpcException>(() => stream.RequestStream.WriteAsync(big));
        Assert.Equal(StatusCode.ResourceExhausted, writeError.StatusCode);
        Assert.Equal(StatusCode.ResourceExhausted, (await Assert.ThrowsAsync<RpcException>(() => stream.ResponseAsync)).StatusCode);
    }

    [Theory]
    [InlineData("truncated", "Incomplete message")]
    [InlineData("truncated-header", "frame header")]
    [InlineData("compressed", "compressed")]
    [InlineData("bad-flag", "compressed flag is 7")]
    [InlineData("garbage", "Failed to parse")]
    [InlineData("two-messages", "more than one message")]
    [InlineData("empty", "without a message")]
    public async Task Malformed_request_frames_end_the_call_with_INTERNAL_and_a_message(string kind, string expected)
    {
        var good = RawHttp.Frame(new EchoRequest { Message = "x" });
        byte[] body = kind switch
        {
            "truncated" => [0, 0, 0, 0, 100, 1, 2, 3],
            "truncated-header" => [0, 0, 0],
            "compressed" => RawHttp.Frame(new EchoRequest { Message = "x" }, flag: 1),
            "bad-flag" => RawHttp.Frame(new EchoRequest { Message = "x" }, flag: 7),
            "garbage" => [0, 0, 0, 0, 4, 0xFF, 0xFF, 0xFF, 0xFF],
            "two-messages" => [.. good, .. good],
            "empty" => [],
            _ => throw new ArgumentOutOfRangeException(nameof(kind)),
        };
        using var http = RawHttp.CreateClient();
        using var response = await RawHttp.PostAsync(http, _server.Server.Address, "/mftest.v1.Echo/Say", body);
        var (code, message) = await RawHttp.ReadStatusAsync(response);
        Assert.Equal((int)StatusCode.Internal, code);
        Assert.Contains(expected, message, StringComparison.OrdinalIgnoreCase);

        // The server is unharmed.
        Assert.Equal("ok", (await _server.Channel.AsyncUnaryCall(EchoService.Say, new EchoRequest { Message = "ok" })).Message);
    }

    [Fact]
    public async Task A_non_gRPC_content_type_gets_HTTP_415()
    {
        using var http = RawHttp.CreateClient();
        using var response = await RawHttp.PostAsync(http, _server.Server.Address, "/mftest.v1.Echo/Say", [1, 2, 3], contentType: "application/json");
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
    }

    [Fact]
    public async Task An_unsupported_grpc_encoding_is_UNIMPLEMENTED_with_the_accepted_encodings()
    {
        using var http = RawHttp.CreateClient();
        using var response = await RawHttp.PostAsync(http, _server.Server.Address, "/mftest.v1.Echo/Say", RawHttp.Frame(new EchoRequest()), headers: [new("grpc-encoding", "snappy")]);
        var (code, message) = await RawHttp.ReadStatusAsync(response);
        Assert.Equal((int)StatusCode.Unimplemented, code);
        Assert.Contains("snappy", message, StringComparison.Ordinal);
        Assert.Equal("identity", response.Headers.GetValues("grpc-accept-encoding").Single());
    }

    [Fact]
    public async Task A_client_pointed_at_a_closed_port_gets_UNAVAILABLE()
    {
        using var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        using var channel = RpcChannel.ForAddress($"http://127.0.0.1:{port}");
        var error = await Assert.ThrowsAsync<RpcException>(() => channel.AsyncUnaryCall(EchoService.Say, new EchoRequest()).ResponseAsync);
        Assert.Equal(StatusCode.Unavailable, error.StatusCode);
    }
}
