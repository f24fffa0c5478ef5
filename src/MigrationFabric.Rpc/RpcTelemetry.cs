using System.Diagnostics;

namespace MigrationFabric.Rpc;

/// <summary>The Rpc part's ActivitySource: one client and one server span per call, linked through W3C traceparent metadata.</summary>
public static class RpcTelemetry
{
    /// <summary>The ActivitySource name to subscribe to (OpenTelemetry: AddSource("MigrationFabric.Rpc")).</summary>
    public const string SourceName = "MigrationFabric.Rpc";

    internal static readonly ActivitySource Source = new(SourceName, "1.0");

    /// <summary>Starts a client span for a call without making it the caller's current activity (a call outlives the statement that starts it).</summary>
    internal static Activity? StartClient(IMethod method, HttpRequestMessage request)
    {
        var previous = Activity.Current;
        var activity = Source.StartActivity(method.FullName, ActivityKind.Client);
        Activity.Current = previous;
        var context = activity ?? previous;
        if (context?.Id is { } id && context.IdFormat == ActivityIdFormat.W3C)
        {
            request.Headers.TryAddWithoutValidation("traceparent", id);
            if (context.TraceStateString is { Length: > 0 } state)
            {
                request.Headers.TryAddWithoutValidation("tracestate", state);
            }
        }

        if (activity is not null)
        {
            Tag(activity, method);
        }

        return activity;
    }

    /// <summary>Starts the server span of a call, a child of the caller's span when the request carries traceparent.</summary>
    internal static Activity? StartServer(IMethod method, string? traceparent, string? tracestate)
    {
        if (!Source.HasListeners())
        {
            return null;
        }

        Activity? activity;
        if (Activity.Current is null && traceparent is not null && ActivityContext.TryParse(traceparent, tracestate, isRemote: true, out var parent))
        {
            activity = Source.StartActivity(method.FullName, ActivityKind.Server, parent);
        }
        else
        {
            activity = Source.StartActivity(method.FullName, ActivityKind.Server);
        }

        if (activity is not null)
        {
            Tag(activity, method);
        }

        return activity;
    }

    /// <summary>Records the call's status on its span and ends it.</summary>
    internal static void Stop(Activity? activity, Status status)
    {
        if (activity is null)
        {
            return;
        }

        activity.SetTag("rpc.grpc.status_code", (int)status.StatusCode);
        if (status.StatusCode != StatusCode.OK)
        {
            activity.SetStatus(ActivityStatusCode.Error, $"{status.StatusCode}: {status.Detail}");
        }

        activity.Stop();
    }

    private static void Tag(Activity activity, IMethod method)
    {
        activity.SetTag("rpc.system", "grpc");
        activity.SetTag("rpc.service", method.ServiceName);
        activity.SetTag("rpc.method", method.Name);
    }
}
