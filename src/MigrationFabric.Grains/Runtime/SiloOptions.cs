namespace MigrationFabric.Grains.Runtime;

/// <summary>Options of a silo's grain runtime; defaults follow Orleans where it has one.</summary>
public sealed class SiloOptions
{
    /// <summary>Host name or IP the silo listens on and advertises. Default 127.0.0.1.</summary>
    public string Host { get; set; } = "127.0.0.1";

    /// <summary>Port to listen on; 0 picks a free one. Default 0.</summary>
    public int Port { get; set; }

    /// <summary>Name in the membership table (the key a HostGrain uses to find its silo); null uses the endpoint. Default null.</summary>
    public string? SiloName { get; set; }

    /// <summary>How long a grain call may take unless its method has [ResponseTimeout]. Default 30 s (as Orleans).</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>An activation idle this long is deactivated. Default 15 min (as Orleans).</summary>
    public TimeSpan CollectionAge { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>How often idle activations are looked for. Default 1 min (as Orleans).</summary>
    public TimeSpan CollectionQuantum { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>Points per silo on the directory ring. Default 30 (as Orleans' consistent ring).</summary>
    public int VirtualNodesPerSilo { get; set; } = 30;

    /// <summary>How long a directory partition waits for every silo's report after a ring change. Default 5 s.</summary>
    public TimeSpan DirectoryRecoveryTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How long a directory call retries while two silos disagree on who owns an entry. Default 10 s.</summary>
    public TimeSpan DirectoryRetryTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How many times a call may be forwarded to another silo before it fails. Default 8.</summary>
    public int MaxForwardCount { get; set; } = 8;

    /// <summary>Queue activation turns on the thread pool's global FIFO queue (fair across activations) instead of the
    /// default scheduler (worker-local LIFO queues: more calls/s when saturated, but some callers starve). Default true.</summary>
    public bool FairTurnScheduling { get; set; } = true;

    /// <summary>How long shutdown waits for activations to run OnDeactivateAsync. Default 30 s.</summary>
    public TimeSpan DeactivationTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid option.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Host)) throw new ArgumentException("SiloOptions.Host must be a host name or IP address.");
        if (Port is < 0 or > 65535) throw new ArgumentException($"SiloOptions.Port must be in 0..65535 (got {Port}).");
        Positive(RequestTimeout, nameof(RequestTimeout));
        Positive(CollectionAge, nameof(CollectionAge));
        Positive(CollectionQuantum, nameof(CollectionQuantum));
        Positive(DirectoryRecoveryTimeout, nameof(DirectoryRecoveryTimeout));
        Positive(DirectoryRetryTimeout, nameof(DirectoryRetryTimeout));
        Positive(DeactivationTimeout, nameof(DeactivationTimeout));
        if (VirtualNodesPerSilo < 1) throw new ArgumentException($"SiloOptions.VirtualNodesPerSilo must be at least 1 (got {VirtualNodesPerSilo}).");
        if (MaxForwardCount < 1) throw new ArgumentException($"SiloOptions.MaxForwardCount must be at least 1 (got {MaxForwardCount}).");
    }

    private static void Positive(TimeSpan value, string name)
    {
        if (value <= TimeSpan.Zero) throw new ArgumentException($"SiloOptions.{name} must be positive (got {value}).");
    }
}
