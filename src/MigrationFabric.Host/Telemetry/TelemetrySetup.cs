namespace MigrationFabric.Host.Telemetry;

using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

/// <summary>Options of the agent's OpenTelemetry pipeline.</summary>
public sealed class TelemetryOptions
{
    /// <summary>Export over OTLP. Default: on exactly when OTEL_EXPORTER_OTLP_ENDPOINT is set (the exporter then reads the standard OTEL_* variables).</summary>
    public bool? OtlpExport { get; set; }

    /// <summary>service.name when OTEL_SERVICE_NAME is not set. Default "migrationfabric".</summary>
    public string ServiceName { get; set; } = "migrationfabric";

    /// <summary>OTLP over HTTP/protobuf to this base address (traces to /v1/traces, metrics to /v1/metrics) instead of what OTEL_* say. Default null.</summary>
    public Uri? HttpEndpoint { get; set; }

    /// <summary>Sources and meters to collect (wildcards allowed). Default "MigrationFabric.*".</summary>
    public string SourcePattern { get; set; } = "MigrationFabric.*";
}

/// <summary>The TracerProvider and MeterProvider for every "MigrationFabric.*" source; nothing is exported unless OTLP is configured.</summary>
public sealed class TelemetrySetup : IDisposable
{
    private readonly TracerProvider? _tracer;
    private readonly MeterProvider? _meter;

    private TelemetrySetup(TracerProvider? tracer, MeterProvider? meter)
    {
        _tracer = tracer;
        _meter = meter;
    }

    /// <summary>True when spans and metrics are exported over OTLP.</summary>
    public bool Exporting => _tracer is not null;

    /// <summary>Builds the providers from <paramref name="options"/> and the OTEL_* environment variables.</summary>
    public static TelemetrySetup FromEnvironment(TelemetryOptions? options = null)
    {
        options ??= new TelemetryOptions();
        bool otlp = options.OtlpExport ?? !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_ENDPOINT"));
        if (!otlp) return new TelemetrySetup(null, null);
        var resource = ResourceBuilder.CreateDefault().AddService(Environment.GetEnvironmentVariable("OTEL_SERVICE_NAME") is { Length: > 0 } s ? s : options.ServiceName);
        var http = options.HttpEndpoint;
        var tracer = Sdk.CreateTracerProviderBuilder()
            .SetResourceBuilder(resource)
            .AddSource(options.SourcePattern)
            .AddOtlpExporter(o => Http(o, http, "v1/traces"))
            .Build();
        var meter = Sdk.CreateMeterProviderBuilder()
            .SetResourceBuilder(resource)
            .AddMeter(options.SourcePattern)
            .AddOtlpExporter(o => Http(o, http, "v1/metrics"))
            .Build();
        return new TelemetrySetup(tracer, meter);
    }

    private static void Http(OpenTelemetry.Exporter.OtlpExporterOptions o, Uri? endpoint, string path)
    {
        if (endpoint is null) return;
        o.Protocol = OpenTelemetry.Exporter.OtlpExportProtocol.HttpProtobuf;
        o.Endpoint = new Uri(endpoint, path);
    }

    /// <summary>Flushes and stops the exporters.</summary>
    public void Dispose()
    {
        _tracer?.Dispose();
        _meter?.Dispose();
    }
}
