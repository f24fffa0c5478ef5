namespace MigrationFabric.Cli.Client;

using MigrationFabric.Contracts.V1;
using MigrationFabric.Host.Api;
using MigrationFabric.Rpc;
using MigrationFabric.Rpc.Client;
using Host = MigrationFabric.Contracts.V1.Host;
using Migration = MigrationFabric.Contracts.V1.Migration;

/// <summary>The scheduler API from the CLI: one channel to one cluster endpoint.</summary>
public sealed class FabricClient(Uri endpoint) : IDisposable
{
    private readonly RpcChannel _channel = new(endpoint, new RpcChannelOptions { ConnectTimeout = TimeSpan.FromSeconds(5) });

    /// <summary>The endpoint.</summary>
    public Uri Endpoint { get; } = endpoint;

    private static CallOptions Options(CancellationToken ct) => new(Deadline: DateTime.UtcNow.AddSeconds(60), CancellationToken: ct);

    /// <summary>ListHosts.</summary>
    public Task<ListHostsResponse> ListHostsAsync(CancellationToken ct) => _channel.AsyncUnaryCall(FabricContract.ListHosts, new ListHostsRequest(), Options(ct)).ResponseAsync;

    /// <summary>DescribeHost.</summary>
    public Task<Host> DescribeHostAsync(string name, CancellationToken ct) => _channel.AsyncUnaryCall(FabricContract.DescribeHost, new DescribeHostRequest { Name = name }, Options(ct)).ResponseAsync;

    /// <summary>CreateVm.</summary>
    public Task<Vm> CreateVmAsync(CreateVmRequest request, CancellationToken ct) => _channel.AsyncUnaryCall(FabricContract.CreateVm, request, Options(ct)).ResponseAsync;

    /// <summary>ListVms.</summary>
    public Task<ListVmsResponse> ListVmsAsync(string host, CancellationToken ct) => _channel.AsyncUnaryCall(FabricContract.ListVms, new ListVmsRequest { Host = host }, Options(ct)).ResponseAsync;

    /// <summary>DescribeVm.</summary>
    public Task<Vm> DescribeVmAsync(string name, CancellationToken ct) => _channel.AsyncUnaryCall(FabricContract.DescribeVm, new DescribeVmRequest { Name = name }, Options(ct)).ResponseAsync;

    /// <summary>DeleteVm.</summary>
    public Task<DeleteVmResponse> DeleteVmAsync(string name, CancellationToken ct) => _channel.AsyncUnaryCall(FabricContract.DeleteVm, new DeleteVmRequest { Name = name }, Options(ct)).ResponseAsync;

    /// <summary>StartMigration.</summary>
    public Task<Migration> StartMigrationAsync(StartMigrationRequest request, CancellationToken ct) => _channel.AsyncUnaryCall(FabricContract.StartMigration, request, Options(ct)).ResponseAsync;

    /// <summary>CancelMigration.</summary>
    public Task<Migration> CancelMigrationAsync(string id, CancellationToken ct) => _channel.AsyncUnaryCall(FabricContract.CancelMigration, new CancelMigrationRequest { MigrationId = id }, Options(ct)).ResponseAsync;

    /// <summary>DescribeMigration.</summary>
    public Task<Migration> DescribeMigrationAsync(string id, CancellationToken ct) => _channel.AsyncUnaryCall(FabricContract.DescribeMigration, new DescribeMigrationRequest { MigrationId = id }, Options(ct)).ResponseAsync;

    /// <summary>ListMigrations.</summary>
    public Task<ListMigrationsResponse> ListMigrationsAsync(string vm, CancellationToken ct) => _channel.AsyncUnaryCall(FabricContract.ListMigrations, new ListMigrationsRequest { Vm = vm }, Options(ct)).ResponseAsync;

    /// <summary>RebalanceMemory.</summary>
    public Task<RebalanceMemoryResponse> RebalanceMemoryAsync(RebalanceMemoryRequest request, CancellationToken ct) => _channel.AsyncUnaryCall(FabricContract.RebalanceMemory, request, Options(ct)).ResponseAsync;

    /// <summary>WatchMigration: every event until the last (which carries the final migration).</summary>
    public async IAsyncEnumerable<MigrationEvent> WatchAsync(string id, uint intervalMs, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        using var call = _channel.AsyncServerStreamingCall(FabricContract.WatchMigration, new WatchMigrationRequest { MigrationId = id, IntervalMs = intervalMs },
            new CallOptions(CancellationToken: ct));
        await foreach (var e in call.ResponseStream.ReadAllAsync(ct).ConfigureAwait(false)) yield return e;
    }

    /// <inheritdoc />
    public void Dispose() => _channel.Dispose();
}
