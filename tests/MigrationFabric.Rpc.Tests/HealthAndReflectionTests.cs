using Google.Protobuf.Reflection;
using MigrationFabric.Rpc.Client;
using MigrationFabric.Rpc.Health.V1;
using MigrationFabric.Rpc.Reflection.V1;
using ServingStatus = MigrationFabric.Rpc.Health.V1.HealthCheckResponse.Types.ServingStatus;

namespace MigrationFabric.Rpc.Tests;

public sealed class HealthAndReflectionTests : IAsyncLifetime
{
    private static readonly TimeSpan Generous = TimeSpan.FromSeconds(20);
    private static readonly ServiceDescriptor HealthDescriptor = HealthReflection.Descriptor.Services[0];
    private static readonly Method<HealthCheckRequest, HealthCheckResponse> Check = Method<HealthCheckRequest, HealthCheckResponse>.Create(HealthDescriptor, "Check");
    private static readonly Method<HealthCheckRequest, HealthCheckResponse> Watch = Method<HealthCheckRequest, HealthCheckResponse>.Create(HealthDescriptor, "Watch");
    private static readonly Method<HealthListRequest, HealthListResponse> List = Method<HealthListRequest, HealthListResponse>.Create(HealthDescriptor, "List");
    private static readonly Method<ServerReflectionRequest, ServerReflectionResponse> ReflectV1 =
        Method<ServerReflectionRequest, ServerReflectionResponse>.Create(ReflectionReflection.Descriptor.Services[0], "ServerReflectionInfo");
    private static readonly Method<Reflection.V1Alpha.ServerReflectionRequest, Reflection.V1Alpha.ServerReflectionResponse> ReflectV1Alpha =
        Method<Reflection.V1Alpha.ServerReflectionRequest, Reflection.V1Alpha.ServerReflectionResponse>.Create(Reflection.V1Alpha.ReflectionReflection.Descriptor.Services[0], "ServerReflectionInfo");

    private RpcTestServer _server = null!;

    private RpcChannel Channel => _server.Channel;

    public async Task InitializeAsync() => _server = await RpcTestServer.StartAsync();

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task Health_check_reports_the_server_and_each_service_and_NOT_FOUND_for_unknown_ones()
    {
        Assert.Equal(ServingStatus.Serving, (await Channel.AsyncUnaryCall(Check, new HealthCheckRequest())).Status);
        Assert.Equal(ServingStatus.Serving, (await Channel.AsyncUnaryCall(Check, new HealthCheckRequest { Service = "mftest.v1.Echo" })).Status);
        _server.Server.Health.SetStatus("mftest.v1.Echo", ServingStatus.NotServing);
        Assert.Equal(ServingStatus.NotServing, (await Channel.AsyncUnaryCall(Check, new HealthCheckRequest { Service = "mftest.v1.Echo" })).Status);
        var error = await Assert.ThrowsAsync<RpcException>(() => Channel.AsyncUnaryCall(Check, new HealthCheckRequest { Service = "no.Such" }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, error.StatusCode);

        var list = await Channel.AsyncUnaryCall(List, new HealthListRequest());
        Assert.Equal(ServingStatus.NotServing, list.Statuses["mftest.v1.Echo"].Status);
        Assert.Equal(ServingStatus.Serving, list.Statuses["grpc.health.v1.Health"].Status);
    }

    [Fact]
    public async Task Health_watch_streams_the_current_status_then_every_change()
    {
        using var call = Channel.AsyncServerStreamingCall(Watch, new HealthCheckRequest { Service = "mftest.v1.Echo" });
        Assert.True(await call.ResponseStream.MoveNext().WaitAsync(Generous));
        Assert.Equal(ServingStatus.Serving, call.ResponseStream.Current.Status);
        _server.Server.Health.SetStatus("mftest.v1.Echo", ServingStatus.NotServing);
        Assert.True(await call.ResponseStream.MoveNext().WaitAsync(Generous));
        Assert.Equal(ServingStatus.NotServing, call.ResponseStream.Current.Status);
        _server.Server.Health.SetStatus("mftest.v1.Echo", ServingStatus.Serving);
        Assert.True(await call.ResponseStream.MoveNext().WaitAsync(Generous));
        Assert.Equal(ServingStatus.Serving, call.ResponseStream.Current.Status);
    }

    [Fact]
    public async Task Health_watch_of_an_unknown_service_says_SERVICE_UNKNOWN_until_it_appears_and_server_stop_ends_it()
    {
        using var call = Channel.AsyncServerStreamingCall(Watch, new HealthCheckRequest { Service = "later.Service" });
        Assert.True(await call.ResponseStream.MoveNext().WaitAsync(Generous));
        Assert.Equal(ServingStatus.ServiceUnknown, call.ResponseStream.Current.Status);
        _server.Server.Health.SetStatus("later.Service", ServingStatus.Serving);
        Assert.True(await call.ResponseStream.MoveNext().WaitAsync(Generous));
        Assert.Equal(ServingStatus.Serving, call.ResponseStream.Current.Status);

        var stopping = _server.Server.StopAsync();
        Assert.True(await call.ResponseStream.MoveNext().WaitAsync(Generous));
        Assert.Equal(ServingStatus.NotServing, call.ResponseStream.Current.Status);
        Assert.False(await call.ResponseStream.MoveNext().WaitAsync(Generous));
        await stopping.WaitAsync(Generous);
    }

    [Fact]
    public async Task Reflection_v1_lists_services_and_returns_files_by_symbol_and_by_name_with_dependencies()
    {
        using var call = Channel.AsyncDuplexStreamingCall(ReflectV1);
        async Task<ServerReflectionResponse> Ask(ServerReflectionRequest request)
        {
            await call.RequestStream.WriteAsync(request);
            Assert.True(await call.ResponseStream.MoveNext().WaitAsync(Generous));
            return call.ResponseStream.Current;
        }

        var services = (await Ask(new ServerReflectionRequest { ListServices = "" })).ListServicesResponse.Service.Select(s => s.Name).ToList();
        Assert.Contains("mftest.v1.Echo", services);
        Assert.Contains("grpc.health.v1.Health", services);
        Assert.Contains("grpc.reflection.v1.ServerReflection", services);
        Assert.Contains("grpc.reflection.v1alpha.ServerReflection", services);

        var bySymbol = await Ask(new ServerReflectionRequest { FileContainingSymbol = "mftest.v1.Echo" });
        var files = bySymbol.FileDescriptorResponse.FileDescriptorProto.Select(b => FileDescriptorProto.Parser.ParseFrom(b)).ToList();
        var echo = Assert.Single(files, f => f.Name == "mftest/v1/echo.proto");
        var service = Assert.Single(echo.Service);
        Assert.Equal(new[] { "Say", "Expand", "Collect", "Chat" }, service.Method.Select(m => m.Name));
        Assert.True(service.Method.Single(m => m.Name == "Chat").ClientStreaming);

        var byMethod = await Ask(new ServerReflectionRequest { FileContainingSymbol = "mftest.v1.Echo.Say" });
        Assert.Equal("mftest/v1/echo.proto", FileDescriptorProto.Parser.ParseFrom(byMethod.FileDescriptorResponse.FileDescriptorProto[0]).Name);
        var byMessage = await Ask(new ServerReflectionRequest { FileContainingSymbol = "grpc.health.v1.HealthCheckResponse.ServingStatus" });
        Assert.Equal("grpc/health/v1/health.proto", FileDescriptorProto.Parser.ParseFrom(byMessage.FileDescriptorResponse.FileDescriptorProto[0]).Name);

        var byName = await Ask(new ServerReflectionRequest { FileByFilename = "grpc/health/v1/health.proto" });
        Assert.Equal("grpc.health.v1", FileDescriptorProto.Parser.ParseFrom(byName.FileDescriptorResponse.FileDescriptorProto[0]).Package);

        var missing = await Ask(new ServerReflectionRequest { FileContainingSymbol = "no.Such" });
        Assert.Equal((int)StatusCode.NotFound, missing.ErrorResponse.ErrorCode);
        Assert.Equal("no.Such", missing.OriginalRequest.FileContainingSymbol);
        var missingFile = await Ask(new ServerReflectionRequest { FileByFilename = "nope.proto" });
        Assert.Equal((int)StatusCode.NotFound, missingFile.ErrorResponse.ErrorCode);

        var numbers = await Ask(new ServerReflectionRequest { AllExtensionNumbersOfType = "mftest.v1.EchoRequest" });
        Assert.Equal("mftest.v1.EchoRequest", numbers.AllExtensionNumbersResponse.BaseTypeName);
        Assert.Empty(numbers.AllExtensionNumbersResponse.ExtensionNumber);

        await call.RequestStream.CompleteAsync();
        Assert.False(await call.ResponseStream.MoveNext());
    }

    [Fact]
    public async Task Reflection_v1alpha_answers_the_same_queries()
    {
        using var call = Channel.AsyncDuplexStreamingCall(ReflectV1Alpha);
        await call.RequestStream.WriteAsync(new Reflection.V1Alpha.ServerReflectionRequest { ListServices = "*" });
        Assert.True(await call.ResponseStream.MoveNext());
        Assert.Contains(call.ResponseStream.Current.ListServicesResponse.Service, s => s.Name == "mftest.v1.Echo");
        await call.RequestStream.WriteAsync(new Reflection.V1Alpha.ServerReflectionRequest { FileContainingSymbol = "mftest.v1.EchoReply" });
        Assert.True(await call.ResponseStream.MoveNext());
        Assert.Equal("mftest/v1/echo.proto", FileDescriptorProto.Parser.ParseFrom(call.ResponseStream.Current.FileDescriptorResponse.FileDescriptorProto[0]).Name);
        await call.RequestStream.CompleteAsync();
        Assert.False(await call.ResponseStream.MoveNext());
    }
}
