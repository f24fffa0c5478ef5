using MigrationFabric.Contracts.V1;

namespace MigrationFabric.Migration.DataPlane;

/// <summary>The two directions of one page stream (a gRPC PageStream call or a TCP data channel), as PageStreamSender uses them.</summary>
internal interface IPageStreamTransport : IAsyncDisposable
{
    /// <summary>Which data channel this is.</summary>
    DataChannel Kind { get; }

    /// <summary>Writes a control message (open, close), serialized as usual.</summary>
    Task WriteMessageAsync(PageStreamMessage message, CancellationToken cancellationToken);

    /// <summary>Writes a batch already laid out as a gRPC frame (<paramref name="frame"/>: 5 bytes left for the frame header, which the transport fills, then <paramref name="message"/>'s bytes).</summary>
    Task WriteFrameAsync(PageStreamMessage message, ReadOnlyMemory<byte> frame, CancellationToken cancellationToken);

    /// <summary>Ends the sending direction.</summary>
    Task CompleteAsync();

    /// <summary>The next acknowledgement; null at the receiver's clean end. Throws <see cref="Rpc.RpcException"/> with the receiver's status when it ended with an error.</summary>
    Task<PageAck?> ReadAckAsync(CancellationToken cancellationToken);
}
