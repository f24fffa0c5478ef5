namespace MigrationFabric.Rpc.Framing;

/// <summary>Names and constants of gRPC over HTTP/2 (grpc/grpc doc/PROTOCOL-HTTP2.md).</summary>
public static class GrpcProtocol
{
    /// <summary>The content type of every gRPC request and response.</summary>
    public const string ContentType = "application/grpc";

    /// <summary>Bytes before each message: a compressed flag and a 4-byte big-endian length.</summary>
    public const int FrameHeaderSize = 5;

    /// <summary>Default largest message a peer accepts, as in gRPC: 4 MiB.</summary>
    public const int DefaultMaxReceiveMessageSize = 4 * 1024 * 1024;

    public const string StatusHeader = "grpc-status";
    public const string MessageHeader = "grpc-message";
    public const string TimeoutHeader = "grpc-timeout";
    public const string EncodingHeader = "grpc-encoding";
    public const string AcceptEncodingHeader = "grpc-accept-encoding";
    public const string IdentityEncoding = "identity";
    public const string TeHeader = "te";
    public const string UserAgent = "migrationfabric-rpc/1.0";

    /// <summary>True for headers the protocol owns, which never surface as custom metadata.</summary>
    public static bool IsReservedHeader(string name)
    {
        if (name.Length == 0 || name[0] == ':')
        {
            return true;
        }

        return name.StartsWith("grpc-", StringComparison.OrdinalIgnoreCase)
            || string.Equals(name, "content-type", StringComparison.OrdinalIgnoreCase)
            || string.Equals(name, "te", StringComparison.OrdinalIgnoreCase)
            || string.Equals(name, "host", StringComparison.OrdinalIgnoreCase)
            || string.Equals(name, "content-length", StringComparison.OrdinalIgnoreCase)
            || string.Equals(name, "connection", StringComparison.OrdinalIgnoreCase)
            || string.Equals(name, "transfer-encoding", StringComparison.OrdinalIgnoreCase)
            || string.Equals(name, "accept-encoding", StringComparison.OrdinalIgnoreCase)
            || string.Equals(name, "traceparent", StringComparison.OrdinalIgnoreCase)
            || string.Equals(name, "tracestate", StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>True when a content type is gRPC ("application/grpc" or "application/grpc+proto" etc., not grpc-web).</summary>
    public static bool IsGrpcContentType(string? contentType)
    {
        if (contentType is null || !contentType.StartsWith(ContentType, StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        if (contentType.Length == ContentType.Length)
        {
            return true;
        }

        var next = contentType[ContentType.Length];
        return next is '+' or ';';
    }
}
