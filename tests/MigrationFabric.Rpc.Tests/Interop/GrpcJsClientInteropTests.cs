using System.Globalization;

namespace MigrationFabric.Rpc.Tests.Interop;

/// <summary>The stock grpc-js client (tests/interop/client.js) against our server: one test per case.</summary>
public sealed class GrpcJsClientInteropTests(OurServerFixture fixture) : IClassFixture<OurServerFixture>
{
    /// <summary>Every case client.js offers; <see cref="The_case_list_matches_client_js"/> keeps the two in step.</summary>
    public static readonly string[] Cases =
    [
        "unary", "unary_empty", "unary_reply_size", "server_stream", "server_stream_empty", "client_stream", "client_stream_empty",
        "duplex", "deadline_unary", "deadline_server_stream", "deadline_duplex", "error_unary", "error_codes", "error_after_stream",
        "error_client_stream", "error_duplex", "metadata", "metadata_on_error", "message_16mib", "message_too_large", "duplex_1gib",
        "server_stream_1gib", "cancel_unary", "cancel_server_stream", "cancel_duplex", "unimplemented", "concurrent",
    ];

    public static TheoryData<string> CaseNames()
    {
        var data = new TheoryData<string>();
        foreach (var name in Cases)
        {
            data.Add(name);
        }

        return data;
    }

    [NodeTheory]
    [MemberData(nameof(CaseNames))]
    public async Task Grpc_js_client_passes(string name)
    {
        var outcome = await NodeScript.RunAsync("client.js",
            ["--target", fixture.Target, "--case", name, "--server-max-message", OurServerFixture.MaxReceiveMessageSize.ToString(CultureInfo.InvariantCulture)],
            TimeSpan.FromMinutes(3));
        NodeScript.AssertPassed(outcome, name);
    }

    [NodeFact]
    public async Task The_case_list_matches_client_js()
    {
        var offered = await NodeScript.ListAsync("client.js");
        Assert.Equal(offered.Order(StringComparer.Ordinal), Cases.Order(StringComparer.Ordinal));
    }

    [NodeFact]
    public async Task A_cancelled_grpc_js_call_cancels_the_handler()
    {
        // cancel_unary cancels a Say that waits 10 s; the handler's token must fire, not just the client give up.
        // A server of its own, so no other case can have set the Echo service's Cancelled signal.
        await using var server = await RpcTestServer.StartAsync();
        var outcome = await NodeScript.RunAsync("client.js", ["--target", $"127.0.0.1:{server.Server.Port}", "--case", "cancel_unary"], TimeSpan.FromMinutes(1));
        NodeScript.AssertPassed(outcome, "cancel_unary");
        var completed = await Task.WhenAny(server.Echo.Cancelled.Task, Task.Delay(TimeSpan.FromSeconds(30)));
        Assert.True(completed == server.Echo.Cancelled.Task, "the Echo handler never saw the grpc-js cancellation");
    }
}
