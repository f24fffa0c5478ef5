using System.Net;

namespace MigrationFabric.Host.Agent;

/// <summary>Options of one host agent (one per hypervisor host); validated at start with a message naming the option.</summary>
public sealed class HostAgentOptions
{
    /// <summary>The host's name, unique in the cluster; the HostGrain's key and the silo's name. Required.</summary>
    public string HostName { get; set; } = "";

    /// <summary>Physical memory this host may give to VMs, bytes. Default 1 GiB.</summary>
    public long MemoryBudgetBytes { get; set; } = 1L << 30;

    /// <summary>Address the scheduler API and data plane listen on. Default loopback.</summary>
    public IPAddress ListenAddress { get; set; } = IPAddress.Loopback;

    /// <summary>Port of the scheduler API and data plane (one gRPC endpoint); 0 picks a free one. Default 0.</summary>
    public int ApiPort { get; set; }

    /// <summary>Port of silo-to-silo messaging; 0 picks a free one. Default 0.</summary>
    public int SiloPort { get; set; }

    /// <summary>Host name or IP other agents reach this one at (advertised in membership and in Host.endpoint). Default 127.0.0.1.</summary>
    public string AdvertisedHost { get; set; } = "127.0.0.1";

    /// <summary>How long a grain call may take. Default 30 s.</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Largest scheduler/data-plane message accepted. Default 64 MiB (page batches are 1 MiB).</summary>
    public int MaxReceiveMessageSize { get; set; } = 64 << 20;

    /// <summary>How long a completed migration (on its source agent) watches the workload at the destination for a recovery to 90% of its pre-migration throughput before the report is final; past it the report says NOT_RECOVERED. Default 5 s.</summary>
    public TimeSpan RecoveryWindow { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>VMMB: rebalance this host's memory among its VMs by demand, reservation and weight this often (as RebalanceMemory does when asked). Default null: only when asked.</summary>
    public TimeSpan? RebalanceInterval { get; set; }

    /// <summary>Directory for the agent's files (private swap files of over-committed VMs). Default null: a new directory under the temp directory, deleted when the agent stops.</summary>
    public string? DataDirectory { get; set; }

    /// <summary>What carries the pages of migrations this host is the source of: TCP data channels negotiated over gRPC, or gRPC PageStream calls. Default Tcp (bench/RESULTS.md, "TCP data channel").</summary>
    public MigrationFabric.Migration.DataPlane.DataChannel DataChannel { get; set; } = MigrationFabric.Migration.DataPlane.DataChannel.Tcp;

    /// <summary>Whether this host, as a migration's destination holding fixed RAM for the VM (the whole VM for pre-copy, post-copy, hybrid,
    /// devirtualizing and a gather; VMemDirect's fixed share), puts RAM behind it at prepare, before the source starts (QEMU's -mem-prealloc).
    /// Naive swap and a split's main are paged by design and preallocate nothing. The time it takes is the report's
    /// destination_preallocation, outside total_time. Default true: otherwise the kernel's page clears are paid on the page stream
    /// (bench/RESULTS.md, "destination preallocation").</summary>
    public bool PreallocateIncomingMemory { get; set; } = true;

    /// <summary>TCP port of the data-channel listener (on <see cref="ListenAddress"/>, like the gRPC endpoint); 0 (the default) picks a free one, which OpenDataChannel tells sources.</summary>
    public int DataChannelPort { get; set; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid option.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(HostName)) throw new ArgumentException("HostAgentOptions.HostName is required (the host's unique name).");
        foreach (char c in HostName)
            if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
                throw new ArgumentException($"HostAgentOptions.HostName '{HostName}' may hold only letters, digits, '-', '_' and '.'.");
        if (MemoryBudgetBytes <= 0 || MemoryBudgetBytes % 4096 != 0)
            throw new ArgumentException($"HostAgentOptions.MemoryBudgetBytes must be a positive multiple of 4096, was {MemoryBudgetBytes}.");
        if (ApiPort is < 0 or > 65535) throw new ArgumentException($"HostAgentOptions.ApiPort must be in 0..65535, was {ApiPort}.");
        if (DataChannelPort is < 0 or > 65535) throw new ArgumentException($"HostAgentOptions.DataChannelPort must be in 0..65535, was {DataChannelPort}.");
        if (!Enum.IsDefined(DataChannel)) throw new ArgumentException($"HostAgentOptions.DataChannel must be Tcp or Grpc, was {(int)DataChannel}.");
        if (SiloPort is < 0 or > 65535) throw new ArgumentException($"HostAgentOptions.SiloPort must be in 0..65535, was {SiloPort}.");
        if (string.IsNullOrWhiteSpace(AdvertisedHost)) throw new ArgumentException("HostAgentOptions.AdvertisedHost must be a host name or IP address.");
        if (RequestTimeout <= TimeSpan.Zero) throw new ArgumentException($"HostAgentOptions.RequestTimeout must be positive, was {RequestTimeout}.");
        if (DataDirectory is { } d && string.IsNullOrWhiteSpace(d)) throw new ArgumentException("HostAgentOptions.DataDirectory must be a directory path or null (a temporary directory).");
        if (MaxReceiveMessageSize < 4 << 20) throw new ArgumentException($"HostAgentOptions.MaxReceiveMessageSize must be at least 4 MiB, was {MaxReceiveMessageSize}.");
        if (RecoveryWindow < TimeSpan.Zero || RecoveryWindow > TimeSpan.FromMinutes(10))
            throw new ArgumentException($"HostAgentOptions.RecoveryWindow must be within 0..10 min, was {RecoveryWindow}.");
        if (RebalanceInterval is { } every && every <= TimeSpan.Zero)
            throw new ArgumentException($"HostAgentOptions.RebalanceInterval must be positive or null (only when asked), was {every}.");
    }
}
