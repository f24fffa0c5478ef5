using MigrationFabric.Grains.Membership;

namespace MigrationFabric.Grains;

/// <summary>A grain call did not complete within its request timeout.</summary>
public sealed class GrainCallTimeoutException(GrainId target, string method, TimeSpan timeout)
    : TimeoutException($"Grain call {target}.{method} did not complete within {timeout.TotalMilliseconds:0} ms (request timeout; override per method with [ResponseTimeout] or SiloOptions.RequestTimeout).")
{
    /// <summary>The grain called.</summary>
    public GrainId Target { get; } = target;

    /// <summary>The method called.</summary>
    public string Method { get; } = method;
}

/// <summary>A silo that a call needs cannot be reached and membership has not yet declared it dead.</summary>
public sealed class SiloUnavailableException(SiloAddress silo, string detail, Exception? inner = null)
    : Exception($"Silo {silo} is unavailable ({detail}); calls to its grains fail until membership declares it dead, then they reactivate elsewhere.", inner)
{
    /// <summary>The unreachable silo.</summary>
    public SiloAddress Silo { get; } = silo;
}

/// <summary>A grain method on another silo threw; carries the remote exception's type and message.</summary>
public sealed class RemoteGrainException(string remoteType, string remoteMessage, string? remoteStackTrace)
    : Exception($"{remoteType}: {remoteMessage}")
{
    /// <summary>Full name of the exception type thrown on the remote silo.</summary>
    public string RemoteType { get; } = remoteType;

    /// <summary>The remote exception's message.</summary>
    public string RemoteMessage { get; } = remoteMessage;

    /// <summary>The remote stack trace (for logs).</summary>
    public string? RemoteStackTrace { get; } = remoteStackTrace;
}

/// <summary>The runtime could not route a call (no active silo, unknown grain type, too many forwards).</summary>
public sealed class GrainRoutingException(string message, Exception? inner = null) : Exception(message, inner);
