using MigrationFabric.Rpc.Client;

namespace MigrationFabric.Migration.DataPlane;

/// <summary>How a destination agent receives one migration.</summary>
public sealed class IncomingMigrationOptions
{
    /// <summary>Batches a sender may have in flight per stream beyond the last acknowledged one. Default 8.</summary>
    public uint Window { get; set; } = 8;

    /// <summary>Batches a sender may have in flight per stream once post-copy has begun (at most <see cref="Window"/>): the push's
    /// bytes already in flight are what a remote fault waits behind on shared cores. Default 2.</summary>
    public uint PostCopyWindow { get; set; } = 2;

    /// <summary>Called at switch-over with the VM's device state once every page is in place or marked remote: start the vCPUs here. Default null (nothing to start).</summary>
    public Func<ReadOnlyMemory<byte>, CancellationToken, Task>? Resume { get; set; }

    /// <summary>Options of the channel remote faults use to reach the source (post-copy). Default: RpcChannelOptions defaults.</summary>
    public RpcChannelOptions? RemotePagesChannel { get; set; }

    /// <summary>Overrides the source's address for remote faults (otherwise the one sent at switch-over). Default null.</summary>
    public Uri? SourceAddressOverride { get; set; }

    /// <summary>How long a remote fault waits for the source before the page is declared lost. Default 10 s.</summary>
    public TimeSpan RemoteFaultTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Longest a background-push batch waits at the destination while remote faults are out (post-copy: faults go first); zero never holds it. Default 5 ms.</summary>
    public TimeSpan FaultPriorityHold { get; set; } = TimeSpan.FromMilliseconds(5);

    /// <summary>How long verification waits for post-copy pages still on their way. Default 5 min.</summary>
    public TimeSpan ArrivalTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>How long, once every page is here and the VM has resumed, the destination waits for the source's integrity check (VerifyPages) before it fails the migration: a source that died after its last page and before the check would otherwise leave it waiting forever. Default 2 min.</summary>
    public TimeSpan VerifyTimeout { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>Puts pages received before switch-over somewhere other than straight into guest RAM (VMemDirect: memory or private swap). Default null (guest RAM).</summary>
    public IPagePlacement? Placement { get; set; }

    internal void Validate()
    {
        if (Window < 1) throw new ArgumentException($"{nameof(IncomingMigrationOptions)}.{nameof(Window)} must be at least 1, was {Window}.");
        if (PostCopyWindow < 1) throw new ArgumentException($"{nameof(IncomingMigrationOptions)}.{nameof(PostCopyWindow)} must be at least 1, was {PostCopyWindow}.");
        if (RemoteFaultTimeout <= TimeSpan.Zero) throw new ArgumentException($"{nameof(IncomingMigrationOptions)}.{nameof(RemoteFaultTimeout)} must be positive, was {RemoteFaultTimeout}.");
        if (FaultPriorityHold < TimeSpan.Zero) throw new ArgumentException($"{nameof(IncomingMigrationOptions)}.{nameof(FaultPriorityHold)} must not be negative, was {FaultPriorityHold}.");
        if (ArrivalTimeout <= TimeSpan.Zero) throw new ArgumentException($"{nameof(IncomingMigrationOptions)}.{nameof(ArrivalTimeout)} must be positive, was {ArrivalTimeout}.");
        if (VerifyTimeout <= TimeSpan.Zero) throw new ArgumentException($"{nameof(IncomingMigrationOptions)}.{nameof(VerifyTimeout)} must be positive, was {VerifyTimeout}.");
    }
}
