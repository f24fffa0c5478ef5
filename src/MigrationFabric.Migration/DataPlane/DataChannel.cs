namespace MigrationFabric.Migration.DataPlane;

/// <summary>Which transport carries a migration's page streams between agents.</summary>
public enum DataChannel
{
    /// <summary>gRPC PageStream calls over HTTP/2 (one connection per stream).</summary>
    Grpc,

    /// <summary>Raw TCP connections negotiated over gRPC (Pages.OpenDataChannel): the same frames without HTTP/2 (QEMU's multifd sockets).</summary>
    Tcp,
}
