namespace MigrationFabric.Rpc;

/// <summary>A call ended with a non-OK status; thrown by clients, and by handlers to choose the status they return.</summary>
public sealed class RpcException : Exception
{
    /// <summary>Creates the exception for a status, with optional trailers to send (server) or that were received (client).</summary>
    public RpcException(Status status, Metadata? trailers = null)
        : base(status.ToString())
    {
        Status = status;
        Trailers = trailers ?? new Metadata();
    }

    /// <summary>Creates the exception from a code and a detail message.</summary>
    public RpcException(StatusCode code, string detail, Metadata? trailers = null)
        : this(new Status(code, detail), trailers)
    {
    }

    /// <summary>The call's status.</summary>
    public Status Status { get; }

    /// <summary>The call's status code.</summary>
    public StatusCode StatusCode => Status.StatusCode;

    /// <summary>Trailing metadata: received from the server (client side) or to send with the status (server side).</summary>
    public Metadata Trailers { get; }
}
