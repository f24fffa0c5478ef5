using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using MigrationFabric.Rpc.Client;
using MigrationFabric.Tests.Echo.V1;

namespace MigrationFabric.Rpc.Tests;

/// <summary>Our client against a hand-written HTTP/2 server that answers wrongly on purpose: every answer must become a clear status.</summary>
public sealed class MisbehavingServerTests : IAsyncLifetime
{
    private WebApplication _app = null!;
    private RpcChannel _channel = null!;

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, l => l.Protocols = HttpProtocols.Http2));
        _app = builder.Build();
        _app.Run(AnswerAsync);
        await _app.StartAsync();
        var address = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        _channel = RpcChannel.ForAddress(address);
    }

    public async Task DisposeAsync()
    {
        _channel.Dispose();
        await _app.DisposeAsync();
    }

    [Theory]
    [InlineData("html", StatusCode.Internal, "content-type")]
    [InlineData("503", StatusCode.Unavailable, "503")]
    [InlineData("404", StatusCode.Unimplemented, "404")]
    [InlineData("no-status", StatusCode.Internal, "grpc-status")]
    [InlineData("truncated", StatusCode.Internal, "Incomplete message")]
    [InlineData("garbage", StatusCode.Internal, "Failed to parse")]
    [InlineData("compressed", StatusCode.Internal, "compressed")]
    [InlineData("two-replies", StatusCode.Internal, "more than one")]
    [InlineData("no-reply", StatusCode.Internal, "no response message")]
    [InlineData("bad-status", StatusCode.Unknown, "Unparsable grpc-status")]
    [InlineData("reset", StatusCode.Internal, "reset the stream")]
    public async Task A_wrong_answer_becomes_a_clear_status(string behaviour, StatusCode expected, string detail)
    {
        var error = await Assert.ThrowsAsync<RpcException>(() =>
            _channel.AsyncUnaryCall(EchoService.Say, new EchoRequest { Message = behaviour }, new CallOptions().WithTimeout(TimeSpan.FromSeconds(20))).ResponseAsync);
        Assert.Equal(expected, error.StatusCode);
        Assert.Contains(detail, error.Status.Detail, StringComparison.OrdinalIgnoreCase);
    }

    private static async Task AnswerAsync(HttpContext http)
    {
        // The request's message text (after the 5-byte header) names the misbehaviour.
        using var body = new MemoryStream();
        await http.Request.Body.CopyToAsync(body);
        var request = EchoRequest.Parser.ParseFrom(body.ToArray().AsSpan(5));
        var response = http.Response;
        var good = RawHttp.Frame(new EchoReply { Message = "ok" });
        switch (request.Message)
        {
            case "html":
                response.ContentType = "text/html";
                await response.WriteAsync("<html/>");
                break;
            case "503":
                response.StatusCode = 503;
                break;
            case "404":
                response.StatusCode = 404;
                break;
            case "no-status":
                response.ContentType = "application/grpc";
                await response.Body.WriteAsync(good);
                break;
            case "truncated":
                response.ContentType = "application/grpc";
                await response.Body.WriteAsync(good.AsMemory(0, good.Length - 1));
                response.AppendTrailer("grpc-status", "0");
                break;
            case "garbage":
                response.ContentType = "application/grpc";
                await response.Body.WriteAsync(new byte[] { 0, 0, 0, 0, 3, 0xFF, 0xFF, 0xFF });
                response.AppendTrailer("grpc-status", "0");
                break;
            case "compressed":
                response.ContentType = "application/grpc";
                await response.Body.WriteAsync(RawHttp.Frame(new EchoReply(), flag: 1));
                response.AppendTrailer("grpc-status", "0");
                break;
            case "two-replies":
                response.ContentType = "application/grpc";
                await response.Body.WriteAsync(good);
                await response.Body.WriteAsync(good);
                response.AppendTrailer("grpc-status", "0");
                break;
            case "no-reply":
                response.ContentType = "application/grpc";
                response.Headers["grpc-status"] = "0";
                break;
            case "bad-status":
                response.ContentType = "application/grpc";
                response.Headers["grpc-status"] = "ok?";
                break;
            case "reset":
                response.ContentType = "application/grpc";
                await response.Body.FlushAsync();
                http.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpResetFeature>()!.Reset(2); // INTERNAL_ERROR
                break;
        }
    }
}
