namespace MigrationFabric.Host.Api;

using Google.Protobuf.Reflection;
using MigrationFabric.Contracts.V1;
using Host = MigrationFabric.Contracts.V1.Host;
using Migration = MigrationFabric.Contracts.V1.Migration;
using MigrationFabric.Rpc;

/// <summary>The methods of migrationfabric.v1.Fabric (fabric.proto), shared by clients (mf, tests) and the server.</summary>
public static class FabricContract
{
    /// <summary>The service descriptor.</summary>
    public static ServiceDescriptor Service { get; } = FabricReflection.Descriptor.FindTypeByName<ServiceDescriptor>("Fabric");

    /// <summary>ListHosts.</summary>
    public static Method<ListHostsRequest, ListHostsResponse> ListHosts { get; } = Method<ListHostsRequest, ListHostsResponse>.Create(Service, "ListHosts");

    /// <summary>DescribeHost.</summary>
    public static Method<DescribeHostRequest, Host> DescribeHost { get; } = Method<DescribeHostRequest, Host>.Create(Service, "DescribeHost");

    /// <summary>CreateVm.</summary>
    public static Method<CreateVmRequest, Vm> CreateVm { get; } = Method<CreateVmRequest, Vm>.Create(Service, "CreateVm");

    /// <summary>ListVms.</summary>
    public static Method<ListVmsRequest, ListVmsResponse> ListVms { get; } = Method<ListVmsRequest, ListVmsResponse>.Create(Service, "ListVms");

    /// <summary>DescribeVm.</summary>
    public static Method<DescribeVmRequest, Vm> DescribeVm { get; } = Method<DescribeVmRequest, Vm>.Create(Service, "DescribeVm");

    /// <summary>DeleteVm.</summary>
    public static Method<DeleteVmRequest, DeleteVmResponse> DeleteVm { get; } = Method<DeleteVmRequest, DeleteVmResponse>.Create(Service, "DeleteVm");

    /// <summary>StartMigration.</summary>
    public static Method<StartMigrationRequest, Migration> StartMigration { get; } = Method<StartMigrationRequest, Migration>.Create(Service, "StartMigration");

    /// <summary>WatchMigration (server streaming).</summary>
    public static Method<WatchMigrationRequest, MigrationEvent> WatchMigration { get; } = Method<WatchMigrationRequest, MigrationEvent>.Create(Service, "WatchMigration");

    /// <summary>CancelMigration.</summary>
    public static Method<CancelMigrationRequest, Migration> CancelMigration { get; } = Method<CancelMigrationRequest, Migration>.Create(Service, "CancelMigration");

    /// <summary>ListMigrations.</summary>
    public static Method<ListMigrationsRequest, ListMigrationsResponse> ListMigrations { get; } = Method<ListMigrationsRequest, ListMigrationsResponse>.Create(Service, "ListMigrations");

    /// <summary>DescribeMigration.</summary>
    public static Method<DescribeMigrationRequest, Migration> DescribeMigration { get; } = Method<DescribeMigrationRequest, Migration>.Create(Service, "DescribeMigration");

    /// <summary>RebalanceMemory.</summary>
    public static Method<RebalanceMemoryRequest, RebalanceMemoryResponse> RebalanceMemory { get; } = Method<RebalanceMemoryRequest, RebalanceMemoryResponse>.Create(Service, "RebalanceMemory");
}
