using System.Collections.Frozen;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using MigrationFabric.Rpc.Framing;

namespace MigrationFabric.Rpc.Server;

/// <summary>Routes HTTP/2 requests to method handlers by :path and rejects what is not a gRPC call, per the protocol spec.</summary>
internal sealed class RpcDispatcher
{
    private readonly FrozenDictionary<string, IServerCallHandler> _handlers;
    private readonly FrozenSet<string> _services;
    private readonly RpcServerOptions _options;
    private readonly ILogger _logger;

    public RpcDispatcher(IEnumerable<RpcServiceDefinition> services, RpcServerOptions options, ILogger logger)
    {
        var handlers = new Dictionary<string, IServerCallHandler>(StringComparer.Ordinal);
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var service in services)
        {
            if (!names.Add(service.Name))
            {
                throw new ArgumentException($"Service '{service.Name}' was added twice.");
            }

            foreach (var handler in service.Handlers)
            {
                handlers.Add("/" + handler.Method.FullName, handler);
            }
        }

        _handlers = handlers.ToFrozenDictionary(StringComparer.Ordinal);
        _services = names.ToFrozenSet(StringComparer.Ordinal);
        _options = options;
        _logger = logger;
    }

    public Task HandleAsync(HttpContext http)
    {
        var request = http.Request;
        var path = request.Path.Value ?? string.Empty;
        if (!HttpMethods.IsPost(request.Method))
        {
            return Reject(http, StatusCodes.Status405MethodNotAllowed, StatusCode.Internal, $"gRPC requires POST; got {request.Method}.");
        }

        if (!GrpcProtocol.IsGrpcContentType(request.ContentType))
        {
            // The spec asks for HTTP 415; the grpc-status helps gRPC clients that look at it.
            return Reject(http, StatusCodes.Status415UnsupportedMediaType, StatusCode.Internal, $"Content-Type '{request.ContentType}' is not supported; expected '{GrpcProtocol.ContentType}'.");
        }

        if (!string.Equals(request.Protocol, "HTTP/2", StringComparison.Ordinal))
        {
            return Reject(http, StatusCodes.Status426UpgradeRequired, StatusCode.Internal, $"Request protocol '{request.Protocol}' is not supported; gRPC needs HTTP/2.");
        }

        var encoding = request.Headers[GrpcProtocol.EncodingHeader].ToString();
        if (encoding.Length != 0 && !string.Equals(encoding, GrpcProtocol.IdentityEncoding, StringComparison.OrdinalIgnoreCase))
        {
            http.Response.Headers[GrpcProtocol.AcceptEncodingHeader] = GrpcProtocol.IdentityEncoding;
            return Reject(http, StatusCodes.Status200OK, StatusCode.Unimplemented, $"Unsupported grpc-encoding '{encoding}'; this server accepts only '{GrpcProtocol.IdentityEncoding}'.");
        }

        if (_handlers.TryGetValue(path, out var handler))
        {
            return handler.HandleAsync(http, _options, _logger);
        }

        var slash = path.IndexOf('/', 1);
        var service = slash > 1 ? path[1..slash] : path.TrimStart('/');
        return Reject(http, StatusCodes.Status200OK, StatusCode.Unimplemented, _services.Contains(service)
            ? $"Method '{path.TrimStart('/')}' is unimplemented."
            : $"Service '{service}' is unimplemented.");
    }

    private Task Reject(HttpContext http, int httpStatus, StatusCode code, string message)
    {
        ServerLog.Rejected(_logger, http.Request.Path.Value ?? string.Empty, message);
        http.Response.StatusCode = httpStatus;
        http.Response.ContentType = GrpcProtocol.ContentType;
        ServerCallContext.WriteStatus(http.Response.Headers, new Status(code, message));
        return Task.CompletedTask;
    }
}
