using MigrationFabric.Rpc.Client;
using MigrationFabric.Rpc.Server;
using MigrationFabric.Tests.Echo.V1;

namespace MigrationFabric.Rpc.Tests;

public sealed class MetadataAndStatusTests : IAsyncLifetime
{
    private RpcTestServer _server = null!;

    private RpcChannel Channel => _server.Channel;

    public async Task InitializeAsync() => _server = await RpcTestServer.StartAsync(extra: TestServices.CreateProbe());

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task Request_metadata_reaches_the_handler_including_binary_values()
    {
        var headers = new Metadata().Add("tenant", "blue").Add("Trace-Bin", new byte[] { 0, 1, 2, 250 });
        var request = new EchoRequest { Message = "m" };
        request.EchoMetadataKeys.Add("tenant");
        request.EchoMetadataKeys.Add("trace-bin");
        using var call = Channel.AsyncUnaryCall(EchoService.Say, request, new CallOptions(Headers: headers));
        var reply = await call;
        Assert.Equal("blue", reply.Metadata["tenant"]);
        Assert.Equal(new byte[] { 0, 1, 2, 250 }, Convert.FromBase64String(reply.Metadata["trace-bin"]));
        var trailers = call.GetTrailers();
        Assert.Equal("blue", trailers.GetValue("echo-tenant"));
        Assert.Equal(new byte[] { 0, 1, 2, 250 }, trailers.GetValueBytes("echo-trace-bin"));
    }

    [Fact]
    public async Task Response_headers_written_by_the_handler_reach_the_client()
    {
        using var call = Channel.AsyncUnaryCall(TestServices.Probe, new EchoRequest { Message = "headers" });
        var headers = await call.ResponseHeadersAsync;
        Assert.Equal("v1", headers.GetValue("h1"));
        Assert.Equal(new byte[] { 0, 1, 255 }, headers.GetValueBytes("h1-bin"));
        Assert.Equal("with headers", (await call).Message);
    }

    [Fact]
    public async Task A_failing_status_carries_code_percent_encoded_message_and_trailers()
    {
        var request = new EchoRequest { FailCode = (int)StatusCode.FailedPrecondition, FailMessage = "échec à 100% \n done" };
        request.EchoMetadataKeys.Add("tenant");
        using var call = Channel.AsyncUnaryCall(EchoService.Say, request, new CallOptions(Headers: new Metadata().Add("tenant", "red")));
        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, error.StatusCode);
        Assert.Equal("échec à 100% \n done", error.Status.Detail);
        Assert.Equal("red", error.Trailers.GetValue("echo-tenant"));
        Assert.Equal(StatusCode.FailedPrecondition, call.GetStatus().StatusCode);
    }

    [Fact]
    public async Task An_error_before_any_message_is_a_trailers_only_response()
    {
        // Seen from a raw HTTP/2 client: grpc-status in the headers, no body, no trailers.
        using var http = RawHttp.CreateClient();
        var body = RawHttp.Frame(new EchoRequest { FailCode = (int)StatusCode.NotFound, FailMessage = "gone" });
        using var response = await RawHttp.PostAsync(http, _server.Server.Address, "/mftest.v1.Echo/Say", body);
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("5", response.Headers.GetValues("grpc-status").Single());
        Assert.Equal("gone", response.Headers.GetValues("grpc-message").Single());
        Assert.Empty(await response.Content.ReadAsByteArrayAsync());
        Assert.False(response.TrailingHeaders.Contains("grpc-status"));
    }

    [Fact]
    public async Task An_error_after_messages_arrives_in_trailers_after_the_messages()
    {
        using var call = Channel.AsyncServerStreamingCall(TestServices.ProbeStream, new EchoRequest());
        Assert.True(await call.ResponseStream.MoveNext());
        Assert.Equal("first", call.ResponseStream.Current.Message);
        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.Aborted, error.StatusCode);
        Assert.Equal("after the first", error.Status.Detail);
        Assert.Equal("yes", error.Trailers.GetValue("late"));
    }

    [Fact]
    public async Task Setting_context_status_fails_the_call_without_throwing()
    {
        using var call = Channel.AsyncUnaryCall(TestServices.Probe, new EchoRequest { Message = "status" });
        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseAsync);
        Assert.Equal(StatusCode.NotFound, error.StatusCode);
        Assert.Equal("because", error.Trailers.GetValue("why"));
    }

    [Fact]
    public async Task A_handler_exception_is_UNKNOWN_without_leaking_its_message()
    {
        var error = await Assert.ThrowsAsync<RpcException>(() => Channel.AsyncUnaryCall(TestServices.Probe, new EchoRequest { Message = "throw" }).ResponseAsync);
        Assert.Equal(StatusCode.Unknown, error.StatusCode);
        Assert.DoesNotContain("secret", error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_handler_cancelling_itself_surfaces_as_CANCELLED()
    {
        var error = await Assert.ThrowsAsync<RpcException>(() => Channel.AsyncUnaryCall(TestServices.Probe, new EchoRequest { Message = "cancel" }).ResponseAsync);
        Assert.Equal(StatusCode.Cancelled, error.StatusCode);
    }

    [Fact]
    public async Task Unknown_service_and_unknown_method_are_UNIMPLEMENTED()
    {
        var noService = new Method<EchoRequest, EchoReply>(MethodType.Unary, "mftest.v1.Nope", "Say");
        var error = await Assert.ThrowsAsync<RpcException>(() => Channel.AsyncUnaryCall(noService, new EchoRequest()).ResponseAsync);
        Assert.Equal(StatusCode.Unimplemented, error.StatusCode);
        Assert.Contains("mftest.v1.Nope", error.Status.Detail, StringComparison.Ordinal);

        var noMethod = new Method<EchoRequest, EchoReply>(MethodType.DuplexStreaming, "mftest.v1.Echo", "Shout");
        using var call = Channel.AsyncDuplexStreamingCall(noMethod);
        error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.Unimplemented, error.StatusCode);
        Assert.Contains("mftest.v1.Echo/Shout", error.Status.Detail, StringComparison.Ordinal);
        // Writing to a call the server already refused reports the same status.
        var writeError = await Assert.ThrowsAsync<RpcException>(() => call.RequestStream.WriteAsync(new EchoRequest()));
        Assert.Equal(StatusCode.Unimplemented, writeError.StatusCode);
    }

    [Fact]
    public async Task Duplex_server_can_speak_before_the_client_writes_on_a_warm_connection()
    {
        // A warm connection matters: SocketsHttpHandler only flushes request HEADERS with body bytes unless told to.
        await Channel.AsyncUnaryCall(EchoService.Say, new EchoRequest());
        using var call = Channel.AsyncDuplexStreamingCall(TestServices.Greet);
        Assert.True(await call.ResponseStream.MoveNext().WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.Equal("hello", call.ResponseStream.Current.Message);
        await call.RequestStream.WriteAsync(new EchoRequest { Message = "back" });
        Assert.True(await call.ResponseStream.MoveNext());
        Assert.Equal("back", call.ResponseStream.Current.Message);
        await call.RequestStream.CompleteAsync();
        Assert.False(await call.ResponseStream.MoveNext());
    }

    [Fact]
    public async Task Status_and_trailers_are_not_available_before_the_call_ends()
    {
        using var call = Channel.AsyncDuplexStreamingCall(EchoService.Chat);
        Assert.Throws<InvalidOperationException>(() => call.GetStatus());
        Assert.Throws<InvalidOperationException>(() => call.GetTrailers());
        await call.RequestStream.CompleteAsync();
        Assert.False(await call.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
    }

    [Fact]
    public async Task Detailed_errors_option_sends_the_exception_message()
    {
        await using var server = await RpcTestServer.StartAsync(new RpcServerOptions { EnableDetailedErrors = true }, extra: TestServices.CreateProbe());
        var error = await Assert.ThrowsAsync<RpcException>(() => server.Channel.AsyncUnaryCall(TestServices.Probe, new EchoRequest { Message = "throw" }).ResponseAsync);
        Assert.Equal(StatusCode.Unknown, error.StatusCode);
        Assert.Contains("InvalidOperationException: secret detail", error.Status.Detail, StringComparison.Ordinal);
    }
}
