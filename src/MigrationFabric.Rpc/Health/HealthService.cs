using System.Threading.Channels;
using MigrationFabric.Rpc.Health.V1;
using MigrationFabric.Rpc.Server;
using ServingStatus = MigrationFabric.Rpc.Health.V1.HealthCheckResponse.Types.ServingStatus;

namespace MigrationFabric.Rpc.Health;

/// <summary>grpc.health.v1.Health: per-service serving status that clients Check, List, or Watch for changes.</summary>
public sealed class HealthService
{
    /// <summary>The name that stands for the server as a whole.</summary>
    public const string Server = "";

    private readonly object _gate = new();
    private readonly Dictionary<string, ServingStatus> _statuses = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<Channel<ServingStatus>>> _watchers = new(StringComparer.Ordinal);
    private bool _shutDown;

    /// <summary>Sets a service's status (use <see cref="Server"/> for the whole server); watchers see the change.</summary>
    public void SetStatus(string service, ServingStatus status)
    {
        ArgumentNullException.ThrowIfNull(service);
        lock (_gate)
        {
            if (_shutDown)
            {
                return; // After shutdown everything stays NOT_SERVING.
            }

            _statuses[service] = status;
            Notify(service, status);
        }
    }

    /// <summary>Forgets a service: Check answers NOT_FOUND, watchers see SERVICE_UNKNOWN.</summary>
    public void ClearStatus(string service)
    {
        ArgumentNullException.ThrowIfNull(service);
        lock (_gate)
        {
            if (_statuses.Remove(service))
            {
                Notify(service, ServingStatus.ServiceUnknown);
            }
        }
    }

    /// <summary>A service's status, or null when unknown.</summary>
    public ServingStatus? GetStatus(string service)
    {
        lock (_gate)
        {
            return _statuses.TryGetValue(service, out var status) ? status : null;
        }
    }

    /// <summary>Marks every service NOT_SERVING and ends every Watch; further changes are ignored (server shutdown).</summary>
    public void Shutdown()
    {
        lock (_gate)
        {
            foreach (var service in _statuses.Keys.ToArray())
            {
                _statuses[service] = ServingStatus.NotServing;
                Notify(service, ServingStatus.NotServing);
            }

            _shutDown = true;
            foreach (var list in _watchers.Values)
            {
                foreach (var channel in list)
                {
                    channel.Writer.TryComplete();
                }
            }

            _watchers.Clear();
        }
    }

    /// <summary>The grpc.health.v1.Health service definition over this state.</summary>
    public RpcServiceDefinition CreateDefinition() =>
        RpcServiceDefinition.CreateBuilder(HealthReflection.Descriptor.Services[0])
            .AddUnary<HealthCheckRequest, HealthCheckResponse>("Check", CheckAsync)
            .AddUnary<HealthListRequest, HealthListResponse>("List", ListAsync)
            .AddServerStreaming<HealthCheckRequest, HealthCheckResponse>("Watch", WatchAsync)
            .Build();

    private Task<HealthCheckResponse> CheckAsync(HealthCheckRequest request, ServerCallContext context)
    {
        var status = GetStatus(request.Service)
            ?? throw new RpcException(StatusCode.NotFound, $"Unknown service '{request.Service}'.");
        return Task.FromResult(new HealthCheckResponse { Status = status });
    }

    private Task<HealthListResponse> ListAsync(HealthListRequest request, ServerCallContext context)
    {
        var response = new HealthListResponse();
        lock (_gate)
        {
            foreach (var (service, status) in _statuses)
            {
                response.Statuses.Add(service, new HealthCheckResponse { Status = status });
            }
        }

        return Task.FromResult(response);
    }

    private async Task WatchAsync(HealthCheckRequest request, IServerStreamWriter<HealthCheckResponse> responses, ServerCallContext context)
    {
        // Only the latest status matters to a watcher, so a slow one skips intermediate states.
        var channel = Channel.CreateBounded<ServingStatus>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropOldest });
        ServingStatus current;
        lock (_gate)
        {
            current = _statuses.TryGetValue(request.Service, out var known) ? known : ServingStatus.ServiceUnknown;
            if (_shutDown)
            {
                channel.Writer.TryComplete();
            }
            else
            {
                if (!_watchers.TryGetValue(request.Service, out var list))
                {
                    _watchers[request.Service] = list = new List<Channel<ServingStatus>>();
                }

                list.Add(channel);
            }
        }

        try
        {
            await responses.WriteAsync(new HealthCheckResponse { Status = current }, context.CancellationToken).ConfigureAwait(false);
            await foreach (var status in channel.Reader.ReadAllAsync(context.CancellationToken).ConfigureAwait(false))
            {
                if (status != current)
                {
                    current = status;
                    await responses.WriteAsync(new HealthCheckResponse { Status = status }, context.CancellationToken).ConfigureAwait(false);
                }
            }
        }
        finally
        {
            lock (_gate)
            {
                if (_watchers.TryGetValue(request.Service, out var list))
                {
                    list.Remove(channel);
                }
            }
        }
    }

    private void Notify(string service, ServingStatus status)
    {
        if (_watchers.TryGetValue(service, out var list))
        {
            foreach (var channel in list)
            {
                channel.Writer.TryWrite(status);
            }
        }
    }
}
