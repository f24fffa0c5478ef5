using MigrationFabric.Migration.Codec;
using MigrationFabric.Rpc.Client;

namespace MigrationFabric.Migration.Strategies;

/// <summary>What every strategy's data plane takes (the CLI, a config file and the gRPC request all land here).</summary>
public abstract class MigrationOptions
{
    /// <summary>Parallel PageStream calls to the destination, like QEMU's multifd channels. Default 4.</summary>
    public int Streams { get; set; } = 4;

    /// <summary>Pages per batch (one gRPC message). Default 256 (1 MiB of raw pages).</summary>
    public int BatchPages { get; set; } = 256;

    /// <summary>Cap on the bytes per second written to the wire, all streams together; null is unlimited. Default null.</summary>
    public long? BandwidthCap { get; set; }

    /// <summary>Payload compression. Default none (loopback and datacenter links are faster than deflate).</summary>
    public PageCompression Compression { get; set; } = PageCompression.None;

    /// <summary>Per-page checksum the streams carry, the destination keeps as the pages' digests and the integrity check compares (StreamOpen.codec.checksum). Default Xxh3 (vectorized: 3-5x XXH64's speed per page, about 0.1 CPU s/GB less on the data plane; bench/RESULTS.md, "XXH3 page checksums").</summary>
    public Memory.Integrity.PageDigestKind Checksum { get; set; } = Memory.Integrity.PageDigestKind.Xxh3;

    /// <summary>Time allowed before switch-over; past it the migration fails cleanly and the VM stays at the source. Default 10 min.</summary>
    public TimeSpan Deadline { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>How long the switch-over call may take before the source takes the VM back. Default 30 s.</summary>
    public TimeSpan SwitchOverTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How often progress is reported while a round runs. Default 250 ms.</summary>
    public TimeSpan ProgressInterval { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>The clock for deadlines, the bandwidth cap and timings. Default the system clock.</summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    /// <summary>What carries the page streams: gRPC PageStream calls, or raw TCP data channels negotiated over gRPC (OpenDataChannel; the destination must run a data-channel listener, PagesService.StartDataChannels, as every host agent does; a TLS destination is refused: the TCP channel has no TLS). Default Grpc, which a bare PagesService serves; host agents default to Tcp (HostAgentOptions.DataChannel), ~3x less CPU per GB (bench/RESULTS.md, "TCP data channel").</summary>
    public DataPlane.DataChannel DataChannel { get; set; } = DataPlane.DataChannel.Grpc;

    /// <summary>Options of the channel to the destination. Default: RpcChannelOptions defaults.</summary>
    public RpcChannelOptions? Channel { get; set; }

    /// <summary>Throws naming the first option that is out of range.</summary>
    public virtual void Validate()
    {
        string n = GetType().Name;
        if (Streams is < 1 or > 64) throw new ArgumentException($"{n}.{nameof(Streams)} must be within 1..64, was {Streams}.");
        if (BatchPages is < 1 or > 1024) throw new ArgumentException($"{n}.{nameof(BatchPages)} must be within 1..1024, was {BatchPages}.");
        if (BandwidthCap is <= 0) throw new ArgumentException($"{n}.{nameof(BandwidthCap)} must be positive or null, was {BandwidthCap}.");
        if (Deadline <= TimeSpan.Zero) throw new ArgumentException($"{n}.{nameof(Deadline)} must be positive, was {Deadline}.");
        if (SwitchOverTimeout <= TimeSpan.Zero) throw new ArgumentException($"{n}.{nameof(SwitchOverTimeout)} must be positive, was {SwitchOverTimeout}.");
        if (ProgressInterval <= TimeSpan.Zero) throw new ArgumentException($"{n}.{nameof(ProgressInterval)} must be positive, was {ProgressInterval}.");
        ArgumentNullException.ThrowIfNull(TimeProvider, $"{n}.{nameof(TimeProvider)}");
        if (Checksum is not (Memory.Integrity.PageDigestKind.Xxh64 or Memory.Integrity.PageDigestKind.Xxh3))
            throw new ArgumentException($"{n}.{nameof(Checksum)} must be Xxh64 or Xxh3, was {(int)Checksum}.");
        if (!Enum.IsDefined(DataChannel)) throw new ArgumentException($"{n}.{nameof(DataChannel)} must be Grpc or Tcp, was {(int)DataChannel}.");
    }
}

/// <summary>Options of <see cref="PreCopy"/>.</summary>
public class PreCopyOptions : MigrationOptions
{
    /// <summary>Longest pause the switch-over may cost: it happens once the remaining dirty pages fit this at the measured bandwidth. Default 300 ms, as QEMU.</summary>
    public TimeSpan DowntimeTarget { get; set; } = TimeSpan.FromMilliseconds(300);

    /// <summary>Rounds before switching over whether or not the remainder fits the downtime target; null never forces it. Default null, as QEMU.</summary>
    public int? MaxRounds { get; set; }

    /// <summary>Throttle the vCPUs stepwise while the dirty rate outruns the link. Default true.</summary>
    public bool AutoConverge { get; set; } = true;

    /// <summary>First throttle step (fraction of time vCPUs sleep). Default 0.2, as QEMU's cpu-throttle-initial.</summary>
    public double AutoConvergeInitialThrottle { get; set; } = 0.2;

    /// <summary>Throttle added each round that still does not converge. Default 0.1, as QEMU's cpu-throttle-increment.</summary>
    public double AutoConvergeIncrement { get; set; } = 0.1;

    /// <summary>Highest throttle. Default 0.99, as QEMU's max-cpu-throttle.</summary>
    public double AutoConvergeMaxThrottle { get; set; } = 0.99;

    /// <summary>Throttle when the pages dirtied during a round exceed this fraction of the pages it sent. Default 0.5, as QEMU.</summary>
    public double AutoConvergeTriggerRatio { get; set; } = 0.5;

    /// <summary>Past the initial step, add only what should bring the dirty rate down to the trigger threshold (at least 0.01, at most the increment) instead of the whole increment. Default false, as QEMU's cpu-throttle-tailslow.</summary>
    public bool AutoConvergeTailSlow { get; set; }

    /// <summary>Consecutive rounds at <see cref="AutoConvergeMaxThrottle"/> whose remainder still does not fit <see cref="DowntimeTarget"/> before pre-copy stops iterating: it then switches over anyway with the expected downtime reported (or fails, past <see cref="DowntimeLimit"/>); hybrid goes post-copy. Default 3.</summary>
    public int AutoConvergeMaxThrottleRounds { get; set; } = 3;

    /// <summary>Hard ceiling on the downtime: when pre-copy stops iterating without converging (auto-converge exhausted or MaxRounds) and the remainder is expected to take longer than this, the migration fails and the VM stays at the source instead of switching over. Null: switch over anyway. Default null. (Hybrid goes post-copy instead and does not use it.)</summary>
    public TimeSpan? DowntimeLimit { get; set; }

    /// <inheritdoc/>
    public override void Validate()
    {
        base.Validate();
        string n = GetType().Name;
        if (DowntimeTarget <= TimeSpan.Zero) throw new ArgumentException($"{n}.{nameof(DowntimeTarget)} must be positive, was {DowntimeTarget}.");
        if (MaxRounds is < 1) throw new ArgumentException($"{n}.{nameof(MaxRounds)} must be at least 1 or null, was {MaxRounds}.");
        if (AutoConvergeInitialThrottle is <= 0 or > 0.99) throw new ArgumentException($"{n}.{nameof(AutoConvergeInitialThrottle)} must be within (0, 0.99], was {AutoConvergeInitialThrottle}.");
        if (AutoConvergeIncrement is <= 0 or > 0.99) throw new ArgumentException($"{n}.{nameof(AutoConvergeIncrement)} must be within (0, 0.99], was {AutoConvergeIncrement}.");
        if (AutoConvergeMaxThrottle < AutoConvergeInitialThrottle || AutoConvergeMaxThrottle > 0.99)
            throw new ArgumentException($"{n}.{nameof(AutoConvergeMaxThrottle)} must be within [{nameof(AutoConvergeInitialThrottle)}, 0.99], was {AutoConvergeMaxThrottle}.");
        if (AutoConvergeTriggerRatio is <= 0 or > 1) throw new ArgumentException($"{n}.{nameof(AutoConvergeTriggerRatio)} must be within (0, 1], was {AutoConvergeTriggerRatio}.");
        if (AutoConvergeMaxThrottleRounds < 1) throw new ArgumentException($"{n}.{nameof(AutoConvergeMaxThrottleRounds)} must be at least 1, was {AutoConvergeMaxThrottleRounds}.");
        if (DowntimeLimit is { } limit && limit < DowntimeTarget)
            throw new ArgumentException($"{n}.{nameof(DowntimeLimit)} must be null or at least {nameof(DowntimeTarget)} ({DowntimeTarget}), was {limit}.");
    }
}

/// <summary>Options of <see cref="PostCopy"/>.</summary>
public class PostCopyOptions : MigrationOptions
{
    /// <summary>Creates post-copy options: as every strategy's, except <see cref="MigrationOptions.BatchPages"/> 32.</summary>
    /// <remarks>Smaller push batches than pre-copy's 256: a remote fault then waits behind at most one 128 KiB batch being encoded or
    /// applied, and the stream windows the push may fill before a fault's hold takes effect are 1 MiB per stream instead of 8 MiB.</remarks>
    public PostCopyOptions() => BatchPages = 32;

    /// <summary>Pages after a faulted page the source sends with it (pre-paging). Default 16.</summary>
    public int Prefetch { get; set; } = 16;

    /// <summary>How remote faults reach the source after switch-over: <see cref="DataPlane.FaultChannel.RemoteFaultTransport.Tcp"/> (a dedicated fault channel; the destination must run a data-channel listener, or the migration fails before switch-over naming this option) or Grpc (RemotePages calls). Default Grpc.</summary>
    public DataPlane.FaultChannel.RemoteFaultTransport FaultTransport { get; set; } = DataPlane.FaultChannel.RemoteFaultTransport.Grpc;

    /// <inheritdoc/>
    public override void Validate()
    {
        base.Validate();
        if (Prefetch is < 0 or > 256) throw new ArgumentException($"{GetType().Name}.{nameof(Prefetch)} must be within 0..256, was {Prefetch}.");
        if (!Enum.IsDefined(FaultTransport)) throw new ArgumentException($"{GetType().Name}.{nameof(FaultTransport)} must be Grpc or Tcp, was {FaultTransport}.");
    }
}

/// <summary>Options of <see cref="Hybrid"/>: pre-copy for at most <see cref="PreCopyRounds"/> rounds, then post-copy for what is left.</summary>
public sealed class HybridOptions : PreCopyOptions
{
    /// <summary>Pre-copy rounds before switching to post-copy (if the remainder has not fit the downtime target before). Default 2.</summary>
    public int PreCopyRounds { get; set; } = 2;

    /// <summary>Pages after a faulted page the source sends with it (pre-paging). Default 16.</summary>
    public int Prefetch { get; set; } = 16;

    /// <summary>How remote faults reach the source after switch-over: <see cref="DataPlane.FaultChannel.RemoteFaultTransport.Tcp"/> (a dedicated fault channel; the destination must run a data-channel listener, or the migration fails before switch-over naming this option) or Grpc (RemotePages calls). Default Grpc.</summary>
    public DataPlane.FaultChannel.RemoteFaultTransport FaultTransport { get; set; } = DataPlane.FaultChannel.RemoteFaultTransport.Grpc;

    /// <inheritdoc/>
    public override void Validate()
    {
        base.Validate();
        if (PreCopyRounds < 1) throw new ArgumentException($"{nameof(HybridOptions)}.{nameof(PreCopyRounds)} must be at least 1, was {PreCopyRounds}.");
        if (Prefetch is < 0 or > 256) throw new ArgumentException($"{nameof(HybridOptions)}.{nameof(Prefetch)} must be within 0..256, was {Prefetch}.");
        if (!Enum.IsDefined(FaultTransport)) throw new ArgumentException($"{nameof(HybridOptions)}.{nameof(FaultTransport)} must be Grpc or Tcp, was {FaultTransport}.");
    }
}
