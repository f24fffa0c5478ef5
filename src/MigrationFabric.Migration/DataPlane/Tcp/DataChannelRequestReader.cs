using System.Buffers;
using Google.Protobuf;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Migration.Codec;
using MigrationFabric.Rpc;
using MigrationFabric.Rpc.Framing;

namespace MigrationFabric.Migration.DataPlane.Tcp;

/// <summary>The destination's read side of a page-stream data channel: each frame is received whole into one pooled array, and a batch's payload is installed from there (no second copy).</summary>
internal sealed class DataChannelRequestReader(DataChannelSocket socket, PooledPageStreamParser parser, int maxMessageSize) : IAsyncStreamReader<PageStreamMessage>
{
    private readonly byte[] _header = new byte[GrpcProtocol.FrameHeaderSize];

    public PageStreamMessage Current { get; private set; } = null!;

    public async Task<bool> MoveNext(CancellationToken cancellationToken = default)
    {
        if (await socket.ReadFrameHeaderAsync(_header, maxMessageSize, cancellationToken).ConfigureAwait(false) is not { } length) return false;
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Max(length, 1));
        try
        {
            await socket.ReadExactlyAsync(buffer.AsMemory(0, length), "a frame", cancellationToken).ConfigureAwait(false);
            if (length == 0) throw new DataChannelFrameException("empty frame: a PageStreamMessage always has a kind.");
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }
        try
        {
            // The parser owns the array from here (returned at Release, or now when no batch keeps it).
            Current = parser.ParseRented(buffer, length);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new DataChannelFrameException($"a frame of {length} bytes is not a PageStreamMessage: {e.Message}");
        }
        return true;
    }
}
