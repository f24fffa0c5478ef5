using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace MigrationFabric.Migration.Telemetry;

/// <summary>The part's ActivitySource and Meter, both named "MigrationFabric.Migration" (the host adds the exporters).</summary>
/// <remarks>Spans: "migration {strategy}", children "migration precopy.round", "migration switchover", "migration postcopy", "migration verify"; at the destination "migration preallocate".</remarks>
public static class MigrationTelemetry
{
    /// <summary>Name of the ActivitySource and the Meter.</summary>
    public const string Name = "MigrationFabric.Migration";

    /// <summary>Spans per migration, phase and round.</summary>
    public static readonly ActivitySource ActivitySource = new(Name);

    /// <summary>Counters and histograms of the data plane.</summary>
    public static readonly Meter Meter = new(Name);

    internal static readonly Counter<long> BytesSent = Meter.CreateCounter<long>("migration.bytes_sent", "By", "Bytes of page batches written to the wire.");
    internal static readonly Counter<long> PagesSent = Meter.CreateCounter<long>("migration.pages_sent", "{page}", "Pages sent in streams.");
    internal static readonly Counter<long> RemoteFaults = Meter.CreateCounter<long>("migration.remote_faults", "{fault}", "Remote faults taken by destinations (post-copy).");
    internal static readonly Histogram<double> Downtime = Meter.CreateHistogram<double>("migration.downtime", "ms", "Pause at the source to resume at the destination.");
    internal static readonly Histogram<double> Preallocation = Meter.CreateHistogram<double>("migration.destination_preallocation", "ms", "A destination putting RAM behind the whole VM before the source starts.");
    internal static readonly Counter<long> Migrations = Meter.CreateCounter<long>("migration.count", "{migration}", "Migrations ended, by strategy and outcome.");
}
