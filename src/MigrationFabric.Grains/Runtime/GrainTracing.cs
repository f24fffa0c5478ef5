using System.Diagnostics;
using MigrationFabric.Grains.Activation;
using MigrationFabric.Grains.Invocation;

namespace MigrationFabric.Grains.Runtime;

/// <summary>The runtime's spans: one client span per outgoing call, one server span per request turn, linked by W3C traceparent.</summary>
internal sealed class GrainTracing
{
    /// <summary>The ActivitySource of the Grains part.</summary>
    public const string SourceName = "MigrationFabric.Grains";

    private readonly ActivitySource _source = new(SourceName);

    public Activity? StartClientActivity(GrainReference target, GrainMethodDescriptor method)
    {
        if (!_source.HasListeners()) return null;
        var a = _source.StartActivity($"grain call {target.Descriptor.Name}.{method.Name}", ActivityKind.Client);
        a?.SetTag("grain.id", target.Id.ToString());
        return a;
    }

    /// <summary>The W3C trace context to send: the client span's, else the caller's current one.</summary>
    public static (string? TraceParent, string? TraceState) Capture(Activity? clientActivity)
    {
        var a = clientActivity ?? Activity.Current;
        if (a is null || a.IdFormat != ActivityIdFormat.W3C) return (null, null);
        return (a.Id, a.TraceStateString);
    }

    /// <summary>Starts the server span of a request turn, parented on the caller's traceparent (also when nobody listens, so the context flows on).</summary>
    public Activity? StartServerActivity(ActivationRequest request)
    {
        string name = $"grain {request.Descriptor.Name}.{request.Method.Name}";
        if (request.TraceParent is null)
            return _source.HasListeners() ? _source.StartActivity(name, ActivityKind.Server) : null;
        if (_source.HasListeners() && ActivityContext.TryParse(request.TraceParent, request.TraceState, isRemote: true, out var parent))
        {
            var a = _source.StartActivity(name, ActivityKind.Server, parent);
            a?.SetTag("grain.id", request.Target.ToString());
            if (a is not null) return a;
        }
        var plain = new Activity(name);
        plain.SetParentId(request.TraceParent);
        plain.TraceStateString = request.TraceState;
        return plain.Start();
    }
}
