using MigrationFabric.Memory.Swap;
using MigrationFabric.Memory.Workloads;
using MigrationFabric.Migration.Reporting;

namespace MigrationFabric.Migration.PrivateMemory.Bench;

/// <summary>What one run of <see cref="VMemDirectBench"/> measured: one destination kind with one workload.</summary>
/// <param name="Kind">Destination kind (naive, vmem-direct, vmem-direct-m2, split, ideal).</param>
/// <param name="Workload">idle, active or kv.</param>
/// <param name="MigrationTime">From the migration's start to the VM resumed at the destination.</param>
/// <param name="Downtime">The VM paused.</param>
/// <param name="Rounds">Pre-copy rounds including the stop-and-copy.</param>
/// <param name="BytesSent">Bytes on the wire, every destination.</param>
/// <param name="PagesVerified">Pages the integrity check compared.</param>
/// <param name="MembenchAfterBytesPerSecond">The memory benchmark's rate over the whole VM at the destination after migration (idle and active runs; null for kv).</param>
/// <param name="DuringMigration">The destination's paging and placement during the migration (private-memory kinds), else null.</param>
/// <param name="After">The destination's paging while the VM ran there after migration (private-memory kinds), else null.</param>
/// <param name="RemotePagesAfter">Split: pages the main host paged in from / out to the sub-host after migration, else null.</param>
/// <param name="Timeline">kv: ops/s samples, elapsed from the key-value store's start, source then destination; else empty.</param>
/// <param name="MigrationStart">kv: when the migration started on <paramref name="Timeline"/>'s clock.</param>
/// <param name="Resumed">kv: when the VM resumed at the destination on <paramref name="Timeline"/>'s clock.</param>
/// <param name="KvCorruptReads">kv: GETs at the destination that did not return what the last SET stored.</param>
/// <param name="RoundDetails">The migration's rounds (the last is the stop-and-copy): pages, time.</param>
/// <param name="DataChannel">What carried the page streams (gRPC calls or TCP data channels).</param>
/// <param name="EmulatorPageIn">Naive with a modelled device emulator: how long its page-ins took at the resume (in the downtime), else null.</param>
/// <param name="Preallocation">How long preallocating the destination's fixed RAM took before the migration started (not in <paramref name="MigrationTime"/>); null: the kind preallocates nothing (<see cref="VMemDirectBench.PreallocationOf"/>) or preallocation was off.</param>
/// <param name="PreallocatedBytes">Bytes that preallocation put RAM behind (0 where the kernel cannot, or nothing was preallocated).</param>
/// <param name="TcpChannelsAtDestination">The most TCP data-channel connections the destination served at once during the migration (0 on gRPC page streams).</param>
/// <param name="TcpChannelsAtSubHost">Split: the same at the sub-host; else 0.</param>
/// <param name="CpuToResume">CPU the process used from the migration's start to the resume: the fabric (source, destination and links, all in this process) and the guest's vCPUs; null where /proc cannot be read.</param>
/// <param name="Repetition">Which of the bench's repetitions (<see cref="VMemDirectBenchOptions.Repeat"/>) this run belongs to, from 1.</param>
public sealed record VMemDirectRun(
    string Kind,
    string Workload,
    TimeSpan MigrationTime,
    TimeSpan Downtime,
    int Rounds,
    long BytesSent,
    long PagesVerified,
    double? MembenchAfterBytesPerSecond,
    PagingSnapshot? DuringMigration,
    PagingSnapshot? After,
    (long In, long Out)? RemotePagesAfter,
    IReadOnlyList<ThroughputSample> Timeline,
    TimeSpan MigrationStart,
    TimeSpan Resumed,
    long KvCorruptReads,
    IReadOnlyList<RoundReport>? RoundDetails = null,
    DataPlane.DataChannel DataChannel = default,
    TimeSpan? EmulatorPageIn = null,
    TimeSpan? Preallocation = null,
    long PreallocatedBytes = 0,
    int TcpChannelsAtDestination = 0,
    int TcpChannelsAtSubHost = 0,
    ProcessCpu? CpuToResume = null,
    int Repetition = 1)
{
    /// <summary>kv: the mean ops/s before the migration started (the baseline of the recovery time).</summary>
    public double KvBaseline
    {
        get
        {
            double sum = 0;
            var n = 0;
            foreach (var s in Timeline)
            {
                if (s.Elapsed > MigrationStart) break;
                // The first half second is the preload.
                if (s.Elapsed < TimeSpan.FromSeconds(0.5)) continue;
                sum += s.PerSecond;
                n++;
            }
            return n == 0 ? 0 : sum / n;
        }
    }

    /// <summary>kv: from the resume until the first sample at 90% of <see cref="KvBaseline"/> or more; null if none reached it.</summary>
    public TimeSpan? KvRecovery
    {
        get
        {
            var baseline = KvBaseline;
            if (baseline <= 0) return null;
            foreach (var s in Timeline)
            {
                if (s.Elapsed > Resumed && s.PerSecond >= 0.9 * baseline) return s.Elapsed - Resumed;
            }
            return null;
        }
    }
}
