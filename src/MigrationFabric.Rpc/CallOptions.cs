namespace MigrationFabric.Rpc;

/// <summary>Per-call options on the client: request metadata, deadline, cancellation.</summary>
/// <param name="Headers">Custom request metadata; null sends none.</param>
/// <param name="Deadline">Absolute UTC time after which the call fails with DEADLINE_EXCEEDED and the server is told so via grpc-timeout; null means none.</param>
/// <param name="CancellationToken">Cancels the call: the stream is reset and the call fails with CANCELLED.</param>
public readonly record struct CallOptions(Metadata? Headers = null, DateTime? Deadline = null, CancellationToken CancellationToken = default)
{
    /// <summary>These options with a deadline <paramref name="timeout"/> from now.</summary>
    public CallOptions WithTimeout(TimeSpan timeout) => this with { Deadline = DateTime.UtcNow + timeout };
}
