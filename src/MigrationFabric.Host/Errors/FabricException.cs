using MigrationFabric.Grains;
using MigrationFabric.Host.Agent;
using MigrationFabric.Rpc;

namespace MigrationFabric.Host.Errors;

/// <summary>A scheduler-visible failure: the gRPC status the API answers with and a message naming what was wrong.</summary>
/// <remarks>Grain calls carry only an exception's type and message between silos, so the code travels in the message as "[Code] detail".</remarks>
public sealed class FabricException(StatusCode code, string detail) : Exception($"[{code}] {detail}")
{
    /// <summary>The status code.</summary>
    public StatusCode Code { get; } = code;

    /// <summary>The message without the code.</summary>
    public string Detail { get; } = detail;

    /// <summary>NOT_FOUND.</summary>
    public static FabricException NotFound(string detail) => new(StatusCode.NotFound, detail);

    /// <summary>INVALID_ARGUMENT.</summary>
    public static FabricException Invalid(string detail) => new(StatusCode.InvalidArgument, detail);

    /// <summary>FAILED_PRECONDITION.</summary>
    public static FabricException Precondition(string detail) => new(StatusCode.FailedPrecondition, detail);

    /// <summary>RESOURCE_EXHAUSTED.</summary>
    public static FabricException Exhausted(string detail) => new(StatusCode.ResourceExhausted, detail);

    /// <summary>Maps any exception from a grain call or handler to the status the scheduler sees.</summary>
    public static RpcException ToRpc(Exception e)
    {
        switch (e)
        {
            case RpcException r: return r;
            case FabricException f: return new RpcException(f.Code, f.Detail);
            case RemoteGrainException remote when remote.RemoteType == typeof(FabricException).FullName && TryParse(remote.RemoteMessage, out var code, out var detail):
                return new RpcException(code, detail);
            case RemoteGrainException remote when remote.RemoteType == typeof(RpcException).FullName:
                return new RpcException(StatusCode.Unavailable, remote.RemoteMessage);
            // A silo dying (or not yet declared dead) is as transient when another silo saw it as when this one did.
            case RemoteGrainException remote when GrainCallRetry.IsTransient(remote):
                return new RpcException(remote.RemoteType == typeof(GrainCallTimeoutException).FullName ? StatusCode.DeadlineExceeded : StatusCode.Unavailable,
                    remote.RemoteMessage);
            case GrainCallTimeoutException t: return new RpcException(StatusCode.DeadlineExceeded, t.Message);
            case SiloUnavailableException u: return new RpcException(StatusCode.Unavailable, u.Message);
            case GrainRoutingException g: return new RpcException(StatusCode.Unavailable, g.Message);
            case OperationCanceledException: return new RpcException(StatusCode.Cancelled, "the call was cancelled.");
            case AggregateException { InnerExceptions.Count: 1 } a: return ToRpc(a.InnerExceptions[0]);
            default: return new RpcException(StatusCode.Internal, $"{e.GetType().Name}: {e.Message}");
        }
    }

    /// <summary>Recovers a FabricException thrown on another silo (so code inside the fabric can branch on it).</summary>
    public static FabricException? From(Exception e) => e switch
    {
        FabricException f => f,
        RemoteGrainException r when r.RemoteType == typeof(FabricException).FullName && TryParse(r.RemoteMessage, out var c, out var d) => new FabricException(c, d),
        _ => null,
    };

    private static bool TryParse(string message, out StatusCode code, out string detail)
    {
        code = StatusCode.Unknown;
        detail = message;
        if (!message.StartsWith('[')) return false;
        int end = message.IndexOf(']');
        if (end < 0 || !Enum.TryParse(message.AsSpan(1, end - 1), out code)) return false;
        detail = message[(end + 1)..].TrimStart();
        return true;
    }
}
