namespace MigrationFabric.Host.Api;

using System.Diagnostics;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Host.Errors;
using MigrationFabric.Host.Telemetry;
using MigrationFabric.Rpc;
using MigrationFabric.Rpc.Server;
using Host = MigrationFabric.Contracts.V1.Host;
using Migration = MigrationFabric.Contracts.V1.Migration;

/// <summary>Binds migrationfabric.v1.Fabric to a <see cref="FabricScheduler"/>: a span per call (parent from a traceparent header) and errors as gRPC statuses.</summary>
public static class FabricService
{
    /// <summary>The service definition to add to the agent's RpcServer.</summary>
    public static RpcServiceDefinition Create(FabricScheduler s) =>
        RpcServiceDefinition.CreateBuilder(FabricContract.Service)
            .AddUnary<ListHostsRequest, ListHostsResponse>("ListHosts", (r, c) => Unary("ListHosts", c, () => s.ListHostsAsync()))
            .AddUnary<DescribeHostRequest, Host>("DescribeHost", (r, c) => Unary("DescribeHost", c, () => s.DescribeHostAsync(r)))
            .AddUnary<CreateVmRequest, Vm>("CreateVm", (r, c) => Unary("CreateVm", c, () => s.CreateVmAsync(r)))
            .AddUnary<ListVmsRequest, ListVmsResponse>("ListVms", (r, c) => Unary("ListVms", c, () => s.ListVmsAsync(r)))
            .AddUnary<DescribeVmRequest, Vm>("DescribeVm", (r, c) => Unary("DescribeVm", c, () => s.DescribeVmAsync(r)))
            .AddUnary<DeleteVmRequest, DeleteVmResponse>("DeleteVm", (r, c) => Unary("DeleteVm", c, () => s.DeleteVmAsync(r)))
            .AddUnary<StartMigrationRequest, Migration>("StartMigration", (r, c) => Unary("StartMigration", c, () => s.StartMigrationAsync(r, c.CancellationToken)))
            .AddServerStreaming<WatchMigrationRequest, MigrationEvent>("WatchMigration", (r, w, c) =>
                Unary<bool>("WatchMigration", c, async () =>
                {
                    await s.WatchMigrationAsync(r, e => w.WriteAsync(e, c.CancellationToken), c.CancellationToken).ConfigureAwait(false);
                    return true;
                }))
            .AddUnary<CancelMigrationRequest, Migration>("CancelMigration", (r, c) => Unary("CancelMigration", c, () => s.CancelMigrationAsync(r)))
            .AddUnary<ListMigrationsRequest, ListMigrationsResponse>("ListMigrations", (r, c) => Unary("ListMigrations", c, () => s.ListMigrationsAsync(r)))
            .AddUnary<DescribeMigrationRequest, Migration>("DescribeMigration", (r, c) => Unary("DescribeMigration", c, () => s.DescribeMigrationAsync(r)))
            .AddUnary<RebalanceMemoryRequest, RebalanceMemoryResponse>("RebalanceMemory", (r, c) => Unary("RebalanceMemory", c, () => s.RebalanceMemoryAsync(r)))
            .Build();

    private static async Task<T> Unary<T>(string method, ServerCallContext context, Func<Task<T>> handler)
    {
        ActivityContext.TryParse(context.RequestHeaders.GetValue("traceparent"), context.RequestHeaders.GetValue("tracestate"), out var parent);
        using var activity = FabricTelemetry.ActivitySource.StartActivity($"fabric {method}", ActivityKind.Server, parent);
        activity?.SetTag("rpc.system", "grpc").SetTag("rpc.service", "migrationfabric.v1.Fabric").SetTag("rpc.method", method);
        try
        {
            var result = await handler().ConfigureAwait(false);
            Count(method, StatusCode.OK);
            return result;
        }
        catch (Exception e) when (!(e is OperationCanceledException && context.CancellationToken.IsCancellationRequested))
        {
            var rpc = FabricException.ToRpc(e);
            activity?.SetStatus(ActivityStatusCode.Error, rpc.Status.Detail).SetTag("rpc.grpc.status_code", (int)rpc.StatusCode);
            Count(method, rpc.StatusCode);
            throw rpc;
        }
    }

    private static void Count(string method, StatusCode code) =>
        FabricTelemetry.ApiCalls.Add(1, new KeyValuePair<string, object?>("rpc.method", method), new KeyValuePair<string, object?>("rpc.grpc.status_code", (int)code));
}
