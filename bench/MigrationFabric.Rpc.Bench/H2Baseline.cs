using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;

namespace MigrationFabric.Rpc.Bench;

/// <summary>HTTP/2 without the Rpc layer: Kestrel h2c plus SocketsHttpHandler streaming one request body, to split the gap into "HTTP/2 stack" and "Rpc layer".</summary>
internal sealed class H2Baseline : IAsyncDisposable
{
    private readonly WebApplication app;
    private readonly HttpClient client;
    private readonly Uri uri;

    private H2Baseline(WebApplication app, HttpClient client, Uri uri)
    {
        this.app = app;
        this.client = client;
        this.uri = uri;
    }

    /// <summary>Starts Kestrel with the given HTTP/2 settings and a client with the given stream window.</summary>
    public static async Task<H2Baseline> StartAsync(H2Settings settings)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = null;
            k.Limits.Http2.MaxFrameSize = settings.ServerMaxFrameSize;
            k.Limits.Http2.InitialConnectionWindowSize = settings.WindowBytes;
            k.Limits.Http2.InitialStreamWindowSize = settings.WindowBytes;
            if (settings.MultipleConnections)
            {
                // One stream per connection, so the client's EnableMultipleHttp2Connections opens a connection per stream.
                k.Limits.Http2.MaxStreamsPerConnection = 1;
            }
            k.Listen(IPAddress.Loopback, 0, o => o.Protocols = HttpProtocols.Http2);
        });
        var app = builder.Build();
        app.Run(ReceiveAsync);
        await app.StartAsync();
        var address = app.Urls.First();
        var handler = new SocketsHttpHandler
        {
            InitialHttp2StreamWindowSize = settings.WindowBytes,
            EnableMultipleHttp2Connections = settings.MultipleConnections,
        };
        var client = new HttpClient(handler) { DefaultRequestVersion = HttpVersion.Version20, DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact, Timeout = Timeout.InfiniteTimeSpan };
        return new H2Baseline(app, client, new Uri(address));
    }

    /// <summary>Sends <paramref name="totalBytes"/> over <paramref name="streams"/> concurrent request streams in <paramref name="chunkBytes"/> writes; returns elapsed seconds.</summary>
    public async Task<double> MoveAsync(long totalBytes, int chunkBytes, int streams, CancellationToken cancellationToken)
    {
        var perStream = totalBytes / streams;
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var tasks = new Task[streams];
        for (var i = 0; i < streams; i++)
        {
            tasks[i] = SendOneAsync(perStream, chunkBytes, cancellationToken);
        }

        await Task.WhenAll(tasks);
        return System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds;
    }

    private async Task SendOneAsync(long bytes, int chunkBytes, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, uri)
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = new ChunkContent(bytes, chunkBytes),
        };
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseContentRead, cancellationToken);
        var body = await response.Content.ReadAsStringAsync(cancellationToken);
        if (body != bytes.ToString(System.Globalization.CultureInfo.InvariantCulture))
        {
            throw new InvalidOperationException($"HTTP/2 baseline: server counted {body} bytes, expected {bytes}");
        }
    }

    private static async Task ReceiveAsync(HttpContext context)
    {
        var reader = context.Request.BodyReader;
        long total = 0;
        while (true)
        {
            var result = await reader.ReadAsync(context.RequestAborted);
            total += result.Buffer.Length;
            reader.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                break;
            }
        }

        await context.Response.WriteAsync(total.ToString(System.Globalization.CultureInfo.InvariantCulture), context.RequestAborted);
    }

    public async ValueTask DisposeAsync()
    {
        client.Dispose();
        await app.StopAsync();
        await app.DisposeAsync();
    }

    private sealed class ChunkContent(long bytes, int chunkBytes) : HttpContent
    {
        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            var buffer = new byte[chunkBytes];
            Random.Shared.NextBytes(buffer);
            var left = bytes;
            while (left > 0)
            {
                var n = (int)Math.Min(left, chunkBytes);
                await stream.WriteAsync(buffer.AsMemory(0, n));
                left -= n;
            }
        }

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }
}

/// <summary>HTTP/2 knobs tried by the baseline.</summary>
internal sealed record H2Settings(int ServerMaxFrameSize, int WindowBytes, bool MultipleConnections)
{
    public override string ToString() => $"maxFrame={ServerMaxFrameSize} window={WindowBytes} multiConn={MultipleConnections}";
}
