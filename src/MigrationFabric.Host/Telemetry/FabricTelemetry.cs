namespace MigrationFabric.Host.Telemetry;

using System.Diagnostics;
using System.Diagnostics.Metrics;

/// <summary>The host agent's ActivitySource and Meter ("MigrationFabric.Host").</summary>
public static class FabricTelemetry
{
    /// <summary>The name of both.</summary>
    public const string Name = "MigrationFabric.Host";

    /// <summary>Spans of scheduler calls and migrations coordinated here.</summary>
    public static readonly ActivitySource ActivitySource = new(Name);

    /// <summary>The host's meter.</summary>
    public static readonly Meter Meter = new(Name);

    /// <summary>Migrations ended, by outcome and strategy.</summary>
    public static readonly Counter<long> MigrationsEnded = Meter.CreateCounter<long>("migrationfabric.host.migrations.ended", "{migration}");

    /// <summary>Scheduler API calls, by method and status.</summary>
    public static readonly Counter<long> ApiCalls = Meter.CreateCounter<long>("migrationfabric.host.api.calls", "{call}");
}
