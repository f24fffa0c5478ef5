namespace MigrationFabric.Migration.DataPlane.FaultChannel;

/// <summary>How a post-copy destination's remote faults reach the source.</summary>
public enum RemoteFaultTransport
{
    /// <summary>RemotePages calls (gRPC over their own HTTP/2 connection).</summary>
    Grpc,

    /// <summary>A dedicated TCP fault channel the source opens through OpenDataChannel (REMOTE_FAULTS) before switch-over, served by one thread on each end (QEMU's postcopy-preempt shape); the destination agent must run a data-channel listener.</summary>
    Tcp,
}
