using System.Globalization;
using MigrationFabric.Rpc.Client;
using MigrationFabric.Tests.Echo.V1;

namespace MigrationFabric.Rpc.Tests;

public sealed class DeadlineAndCancellationTests : IAsyncLifetime
{
    private static readonly TimeSpan Generous = TimeSpan.FromSeconds(20);
    private RpcTestServer _server = null!;

    private RpcChannel Channel => _server.Channel;

    public async Task InitializeAsync() => _server = await RpcTestServer.StartAsync(extra: TestServices.CreateProbe());

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task Client_deadline_fails_the_call_and_cancels_the_server_handler()
    {
        // A warm connection first: on a loaded machine a 300 ms deadline could pass while the first call still connects, and a
        // call whose deadline passed before its headers left never reaches the handler (correctly), leaving nothing to cancel.
        await Channel.AsyncUnaryCall(EchoService.Say, new EchoRequest { Message = "warm" }).ResponseAsync;
        var options = new CallOptions(Deadline: DateTime.UtcNow.AddSeconds(2));
        var response = Channel.AsyncUnaryCall(EchoService.Say, new EchoRequest { DelayMs = 30_000 }, options).ResponseAsync;
        await _server.Echo.Delaying.Task.WaitAsync(Generous);
        var error = await Assert.ThrowsAsync<RpcException>(() => response);
        Assert.Equal(StatusCode.DeadlineExceeded, error.StatusCode);
        var context = await _server.Echo.Cancelled.Task.WaitAsync(Generous);
        Assert.True(context.CancellationToken.IsCancellationRequested);
    }

    [Fact]
    public async Task Client_sends_its_deadline_as_grpc_timeout()
    {
        var reply = await Channel.AsyncUnaryCall(TestServices.Probe, new EchoRequest { Message = "deadline" }, new CallOptions().WithTimeout(TimeSpan.FromSeconds(30)));
        var remaining = double.Parse(reply.Message, CultureInfo.InvariantCulture);
        Assert.InRange(remaining, 1_000, 30_001);

        var none = await Channel.AsyncUnaryCall(TestServices.Probe, new EchoRequest { Message = "deadline" });
        Assert.Equal("-1", none.Message);
    }

    [Fact]
    public async Task A_deadline_already_passed_fails_without_sending()
    {
        using var call = Channel.AsyncUnaryCall(EchoService.Say, new EchoRequest(), new CallOptions(Deadline: DateTime.UtcNow.AddSeconds(-1)));
        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseAsync);
        Assert.Equal(StatusCode.DeadlineExceeded, error.StatusCode);
    }

    [Fact]
    public async Task Server_enforces_grpc_timeout_even_when_the_client_does_not()
    {
        // A raw client sends grpc-timeout but never enforces it: the server must answer DEADLINE_EXCEEDED itself.
        using var http = RawHttp.CreateClient();
        using var response = await RawHttp.PostAsync(http, _server.Server.Address, "/mftest.v1.Echo/Say", RawHttp.Frame(new EchoRequest { DelayMs = 30_000 }),
            headers: [new("grpc-timeout", "200m")]);
        var (code, message) = await RawHttp.ReadStatusAsync(response).WaitAsync(Generous);
        Assert.Equal((int)StatusCode.DeadlineExceeded, code);
        Assert.Contains("Deadline", message, StringComparison.Ordinal);
        await _server.Echo.Cancelled.Task.WaitAsync(Generous);
    }

    [Fact]
    public async Task Client_cancellation_resets_the_stream_and_cancels_the_server_handler()
    {
        using var cts = new CancellationTokenSource();
        using var call = Channel.AsyncDuplexStreamingCall(EchoService.Chat, new CallOptions(CancellationToken: cts.Token));
        await call.RequestStream.WriteAsync(new EchoRequest { DelayMs = 30_000 });
        var read = call.ResponseStream.MoveNext();
        await _server.Echo.Delaying.Task.WaitAsync(Generous);
        cts.Cancel();
        var error = await Assert.ThrowsAsync<RpcException>(() => read);
        Assert.Equal(StatusCode.Cancelled, error.StatusCode);
        var context = await _server.Echo.Cancelled.Task.WaitAsync(Generous);
        Assert.True(context.CancellationToken.IsCancellationRequested);
        Assert.Equal(StatusCode.Cancelled, call.GetStatus().StatusCode);
    }

    [Fact]
    public async Task A_token_cancelled_before_the_call_fails_it_at_once()
    {
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        var error = await Assert.ThrowsAsync<RpcException>(() => Channel.AsyncUnaryCall(EchoService.Say, new EchoRequest(), new CallOptions(CancellationToken: cts.Token)).ResponseAsync);
        Assert.Equal(StatusCode.Cancelled, error.StatusCode);
    }

    [Fact]
    public async Task Disposing_a_running_call_cancels_it_on_the_server()
    {
        var call = Channel.AsyncServerStreamingCall(EchoService.Expand, new EchoRequest { DelayMs = 30_000, Count = 1 });
        var headers = call.ResponseHeadersAsync;
        await _server.Echo.Delaying.Task.WaitAsync(Generous);
        call.Dispose();
        await _server.Echo.Cancelled.Task.WaitAsync(Generous);
        await Assert.ThrowsAsync<RpcException>(() => headers);
        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.Cancelled, error.StatusCode);
    }
}
