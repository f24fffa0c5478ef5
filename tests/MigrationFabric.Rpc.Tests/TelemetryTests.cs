using System.Collections.Concurrent;
using System.Diagnostics;
using MigrationFabric.Tests.Echo.V1;

namespace MigrationFabric.Rpc.Tests;

public sealed class TelemetryTests : IClassFixture<EchoServerFixture>
{
    private readonly RpcTestServer _server;

    public TelemetryTests(EchoServerFixture fixture)
    {
        _server = fixture.Server;
    }

    [Fact]
    public async Task Client_and_server_spans_share_the_trace_and_record_the_status()
    {
        var stopped = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == RpcTelemetry.SourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = stopped.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);

        using var root = new Activity("test-root").SetIdFormat(ActivityIdFormat.W3C).Start();
        await _server.Channel.AsyncUnaryCall(EchoService.Say, new EchoRequest { Message = "traced" });
        Assert.Same(root, Activity.Current); // starting a call does not change the caller's current span
        await Assert.ThrowsAsync<RpcException>(() => _server.Channel.AsyncUnaryCall(EchoService.Say, new EchoRequest { FailCode = 5 }).ResponseAsync);

        var mine = await WaitForAsync(() => stopped.Where(a => a.TraceId == root.TraceId).ToList(), list => list.Count >= 4);
        var clients = mine.Where(a => a.Kind == ActivityKind.Client).ToList();
        var servers = mine.Where(a => a.Kind == ActivityKind.Server).ToList();
        Assert.Equal(2, clients.Count);
        Assert.Equal(2, servers.Count);
        Assert.All(clients, c => Assert.Equal(root.SpanId, c.ParentSpanId));
        Assert.All(servers, s => Assert.Contains(clients, c => c.SpanId == s.ParentSpanId));
        Assert.All(mine, a => Assert.Equal("mftest.v1.Echo/Say", a.OperationName));
        Assert.Contains(clients, c => c.Status == ActivityStatusCode.Error && (int?)c.GetTagItem("rpc.grpc.status_code") == 5);
        Assert.Contains(servers, s => s.Status == ActivityStatusCode.Error && (int?)s.GetTagItem("rpc.grpc.status_code") == 5);
        Assert.Equal("grpc", clients[0].GetTagItem("rpc.system"));
    }

    private static async Task<T> WaitForAsync<T>(Func<T> probe, Func<T, bool> done)
    {
        // The server span ends just after the response is sent, so it may trail the client's by a moment.
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            var value = probe();
            if (done(value) || DateTime.UtcNow > deadline)
            {
                return value;
            }

            await Task.Delay(20);
        }
    }
}
