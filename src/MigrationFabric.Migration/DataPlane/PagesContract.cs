using Google.Protobuf.Reflection;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Rpc;

namespace MigrationFabric.Migration.DataPlane;

/// <summary>The methods of migrationfabric.v1.Pages (pages.proto), shared by clients and the server.</summary>
public static class PagesContract
{
    /// <summary>The service descriptor.</summary>
    public static ServiceDescriptor Service { get; } = PagesReflection.Descriptor.Services[0];

    /// <summary>Duplex page batches and acknowledgements.</summary>
    public static Method<PageStreamMessage, PageAck> PageStream { get; } = Method<PageStreamMessage, PageAck>.Create(Service, "PageStream");

    /// <summary>Pages on demand (remote faults).</summary>
    public static Method<RemotePagesRequest, RemotePagesResponse> RemotePages { get; } = Method<RemotePagesRequest, RemotePagesResponse>.Create(Service, "RemotePages");

    /// <summary>Pages a split VM's main host pages out to its sub-host.</summary>
    public static Method<StorePagesRequest, StorePagesResponse> StorePages { get; } = Method<StorePagesRequest, StorePagesResponse>.Create(Service, "StorePages");

    /// <summary>Hand-over of the VM.</summary>
    public static Method<SwitchOverRequest, SwitchOverResponse> SwitchOver { get; } = Method<SwitchOverRequest, SwitchOverResponse>.Create(Service, "SwitchOver");

    /// <summary>Integrity check chunks.</summary>
    public static Method<VerifyPagesRequest, VerifyPagesResponse> VerifyPages { get; } = Method<VerifyPagesRequest, VerifyPagesResponse>.Create(Service, "VerifyPages");

    /// <summary>Abandons a migration at the destination.</summary>
    public static Method<AbortMigrationRequest, AbortMigrationResponse> AbortMigration { get; } = Method<AbortMigrationRequest, AbortMigrationResponse>.Create(Service, "AbortMigration");

    /// <summary>Negotiates a raw TCP data channel (port and single-use token).</summary>
    public static Method<OpenDataChannelRequest, OpenDataChannelResponse> OpenDataChannel { get; } = Method<OpenDataChannelRequest, OpenDataChannelResponse>.Create(Service, "OpenDataChannel");
}
