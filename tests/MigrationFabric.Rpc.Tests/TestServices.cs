using MigrationFabric.Rpc.Server;
using MigrationFabric.Tests.Echo.V1;

namespace MigrationFabric.Rpc.Tests;

/// <summary>Small extra services for behaviours Echo cannot show (response headers, deadlines seen by the server, handler cancellation).</summary>
internal static class TestServices
{
    public static readonly Method<EchoRequest, EchoReply> Probe = new(MethodType.Unary, "mftest.v1.Probe", "Probe");
    public static readonly Method<EchoRequest, EchoReply> ProbeStream = new(MethodType.ServerStreaming, "mftest.v1.Probe", "ProbeStream");
    public static readonly Method<EchoRequest, EchoReply> Greet = new(MethodType.DuplexStreaming, "mftest.v1.Probe", "Greet");

    /// <summary>
    /// Probe: message "headers" sends response headers "h1"/"h1-bin" then replies; "deadline" replies with the deadline's remaining ms;
    /// "cancel" throws OperationCanceledException; "throw" throws InvalidOperationException; "status" sets context.Status to NOT_FOUND.
    /// ProbeStream: writes one reply then fails with ABORTED. Greet (duplex): speaks first ("hello"), then echoes each request.
    /// </summary>
    public static RpcServiceDefinition CreateProbe() =>
        RpcServiceDefinition.CreateBuilder("mftest.v1.Probe")
            .AddUnary(Probe, async (request, context) =>
            {
                switch (request.Message)
                {
                    case "headers":
                        await context.WriteResponseHeadersAsync(new Metadata().Add("h1", "v1").Add("h1-bin", new byte[] { 0, 1, 255 }));
                        return new EchoReply { Message = "with headers" };
                    case "deadline":
                        var remaining = context.Deadline == DateTime.MaxValue ? -1 : (context.Deadline - DateTime.UtcNow).TotalMilliseconds;
                        return new EchoReply { Message = remaining.ToString(System.Globalization.CultureInfo.InvariantCulture) };
                    case "cert":
                        return new EchoReply { Message = context.ClientCertificate?.Subject ?? "none" };
                    case "cancel":
                        throw new OperationCanceledException("handler gave up");
                    case "throw":
                        throw new InvalidOperationException("secret detail");
                    case "status":
                        context.Status = new Status(StatusCode.NotFound, "nothing here");
                        context.ResponseTrailers.Add("why", "because");
                        return new EchoReply();
                    default:
                        return new EchoReply { Message = request.Message };
                }
            })
            .AddServerStreaming(ProbeStream, async (request, responses, context) =>
            {
                await responses.WriteAsync(new EchoReply { Message = "first" });
                throw new RpcException(StatusCode.Aborted, "after the first", new Metadata().Add("late", "yes"));
            })
            .AddDuplexStreaming(Greet, async (requests, responses, context) =>
            {
                await responses.WriteAsync(new EchoReply { Message = "hello" });
                while (await requests.MoveNext())
                {
                    await responses.WriteAsync(new EchoReply { Message = requests.Current.Message });
                }
            })
            .Build();
}
