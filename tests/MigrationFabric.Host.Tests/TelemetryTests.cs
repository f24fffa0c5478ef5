namespace MigrationFabric.Host.Tests;

using System.Collections.Concurrent;
using System.Net;
using System.Text;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Host.Api;
using MigrationFabric.Host.Telemetry;

/// <summary>Spans and metrics leave over OTLP (HTTP/protobuf) to a receiver; nothing is exported unless asked.</summary>
public sealed class TelemetryTests(TestCluster cluster) : IClassFixture<TestCluster>
{
    [Fact]
    public void Without_an_OTLP_endpoint_nothing_is_exported()
    {
        Assert.True(string.IsNullOrEmpty(Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_ENDPOINT")), "this test expects OTEL_EXPORTER_OTLP_ENDPOINT unset");
        using var telemetry = TelemetrySetup.FromEnvironment();
        Assert.False(telemetry.Exporting);
    }

    [Fact]
    public async Task Scheduler_call_spans_and_host_metrics_reach_an_otlp_receiver()
    {
        // A bare HTTP receiver: OTLP/HTTP bodies are protobuf, whose strings travel as plain UTF-8.
        int port = FreePort();
        using var listener = new HttpListener();
        listener.Prefixes.Add($"http://127.0.0.1:{port}/");
        listener.Start();
        var bodies = new ConcurrentDictionary<string, string>();
        var receiving = Task.Run(async () =>
        {
            while (listener.IsListening)
            {
                HttpListenerContext ctx;
                try { ctx = await listener.GetContextAsync(); } catch (Exception) { return; }
                using var ms = new MemoryStream();
                await ctx.Request.InputStream.CopyToAsync(ms);
                bodies.AddOrUpdate(ctx.Request.Url!.AbsolutePath, _ => Encoding.UTF8.GetString(ms.ToArray()), (_, b) => b + Encoding.UTF8.GetString(ms.ToArray()));
                Assert.Equal("application/x-protobuf", ctx.Request.ContentType);
                ctx.Response.StatusCode = 200;
                ctx.Response.Close();
            }
        });

        using (var telemetry = TelemetrySetup.FromEnvironment(new TelemetryOptions { OtlpExport = true, HttpEndpoint = new Uri($"http://127.0.0.1:{port}/"), ServiceName = "mf-telemetry-test" }))
        {
            Assert.True(telemetry.Exporting);
            await cluster.Call(FabricContract.ListHosts, new ListHostsRequest());
        } // disposing flushes both exporters

        Assert.Contains("fabric ListHosts", bodies.GetValueOrDefault("/v1/traces") ?? "");
        Assert.Contains("mf-telemetry-test", bodies.GetValueOrDefault("/v1/traces") ?? "");
        Assert.Contains("migrationfabric.host.api.calls", bodies.GetValueOrDefault("/v1/metrics") ?? "");
        listener.Stop();
        await receiving;
    }

    private static int FreePort()
    {
        using var socket = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        socket.Start();
        return ((IPEndPoint)socket.LocalEndpoint).Port;
    }
}
