using System.Collections.Concurrent;
using MigrationFabric.Rpc;
using MigrationFabric.Rpc.Client;
using MigrationFabric.Rpc.Health;
using MigrationFabric.Rpc.Health.V1;
using ServingStatus = MigrationFabric.Rpc.Health.V1.HealthCheckResponse.Types.ServingStatus;

namespace MigrationFabric.Grains.Membership;

/// <summary>Probes a silo with a grpc.health.v1 Check over the Rpc layer, asking for that exact silo identity.</summary>
/// <remarks>
/// The Check names the service <c>mf.silo/host:port@generation</c>; each silo marks only its own
/// identity SERVING (<see cref="AnswerProbes"/>), so a probe that reaches a restarted process on the
/// same endpoint gets NOT_FOUND and counts as missed. One channel per endpoint is reused.
/// </remarks>
public sealed class GrpcHealthProbe : IProbe, IDisposable
{
    /// <summary>Prefix of the health service name a silo answers probes under.</summary>
    public const string ServicePrefix = "mf.silo/";

    private static readonly Method<HealthCheckRequest, HealthCheckResponse> Check =
        Method<HealthCheckRequest, HealthCheckResponse>.Create(HealthReflection.Descriptor.Services[0], "Check");

    private readonly ConcurrentDictionary<string, Lazy<RpcChannel>> _channels = new(StringComparer.OrdinalIgnoreCase);
    private readonly RpcChannelOptions? _options;
    private readonly string _scheme;

    /// <summary>Creates the prober; <paramref name="scheme"/> is http (h2c) or https.</summary>
    public GrpcHealthProbe(RpcChannelOptions? options = null, string scheme = "http")
    {
        if (scheme != Uri.UriSchemeHttp && scheme != Uri.UriSchemeHttps)
            throw new ArgumentException($"Probe scheme '{scheme}' must be http or https.", nameof(scheme));
        _options = options;
        _scheme = scheme;
    }

    /// <summary>The health service name <paramref name="silo"/> answers probes under.</summary>
    public static string ServiceName(SiloAddress silo)
    {
        ArgumentNullException.ThrowIfNull(silo);
        return ServicePrefix + silo;
    }

    /// <summary>Makes the silo whose server owns <paramref name="health"/> answer probes for <paramref name="self"/>.</summary>
    public static void AnswerProbes(HealthService health, SiloAddress self)
    {
        ArgumentNullException.ThrowIfNull(health);
        health.SetStatus(ServiceName(self), ServingStatus.Serving);
    }

    /// <summary>Stops answering probes for <paramref name="self"/> (the others will suspect it).</summary>
    public static void StopAnsweringProbes(HealthService health, SiloAddress self)
    {
        ArgumentNullException.ThrowIfNull(health);
        health.ClearStatus(ServiceName(self));
    }

    /// <inheritdoc />
    public async Task ProbeAsync(SiloAddress target, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(target);
        var channel = _channels.GetOrAdd(target.Endpoint,
            endpoint => new Lazy<RpcChannel>(() => new RpcChannel(new Uri($"{_scheme}://{endpoint}"), _options))).Value;
        using var call = channel.AsyncUnaryCall(Check, new HealthCheckRequest { Service = ServiceName(target) },
            new CallOptions(CancellationToken: cancellationToken));
        var reply = await call.ResponseAsync.ConfigureAwait(false);
        if (reply.Status != ServingStatus.Serving)
            throw new SiloProbeFailedException(target, $"Silo {target} answered its health probe with {reply.Status}.");
    }

    /// <summary>Closes every channel.</summary>
    public void Dispose()
    {
        foreach (var channel in _channels.Values)
            if (channel.IsValueCreated)
                channel.Value.Dispose();
        _channels.Clear();
    }
}

/// <summary>A probed silo answered, but not as serving.</summary>
public sealed class SiloProbeFailedException : Exception
{
    /// <summary>Creates the exception.</summary>
    public SiloProbeFailedException(SiloAddress silo, string message) : base(message) => Silo = silo;

    /// <summary>The probed silo.</summary>
    public SiloAddress Silo { get; }
}
