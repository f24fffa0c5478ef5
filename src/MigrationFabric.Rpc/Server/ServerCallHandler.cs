using Google.Protobuf;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace MigrationFabric.Rpc.Server;

/// <summary>Runs one method's handler for an HTTP/2 request: reads requests, calls the handler, writes responses and the status.</summary>
internal interface IServerCallHandler
{
    IMethod Method { get; }

    Task HandleAsync(HttpContext http, RpcServerOptions options, ILogger logger);
}

/// <summary>The typed <see cref="IServerCallHandler"/> for one method.</summary>
internal sealed class ServerCallHandler<TRequest, TResponse> : IServerCallHandler
    where TRequest : class, IMessage<TRequest>, new()
    where TResponse : class, IMessage<TResponse>, new()
{
    private readonly Method<TRequest, TResponse> _method;
    private readonly Delegate _handler;

    public ServerCallHandler(Method<TRequest, TResponse> method, Delegate handler)
    {
        _method = method;
        _handler = handler;
    }

    public IMethod Method => _method;

    public async Task HandleAsync(HttpContext http, RpcServerOptions options, ILogger logger)
    {
        using var activity = RpcTelemetry.StartServer(_method, http.Request.Headers.TraceParent, http.Request.Headers.TraceState);
        using var context = new ServerCallContext(http, _method, options);
        var reader = new RequestStreamReader<TRequest>(context, _method.RequestDeserializer);
        var writer = new ResponseStreamWriter<TResponse>(context);
        Status status;
        try
        {
            switch (_handler)
            {
                case UnaryServerMethod<TRequest, TResponse> unary:
                {
                    var request = await reader.ReadSingleAsync().ConfigureAwait(false);
                    var response = await unary(request, context).ConfigureAwait(false);
                    await WriteSingleAsync(context, response).ConfigureAwait(false);
                    break;
                }

                case ServerStreamingServerMethod<TRequest, TResponse> serverStreaming:
                {
                    var request = await reader.ReadSingleAsync().ConfigureAwait(false);
                    await serverStreaming(request, writer, context).ConfigureAwait(false);
                    break;
                }

                case ClientStreamingServerMethod<TRequest, TResponse> clientStreaming:
                {
                    var response = await clientStreaming(reader, context).ConfigureAwait(false);
                    await WriteSingleAsync(context, response).ConfigureAwait(false);
                    break;
                }

                case DuplexStreamingServerMethod<TRequest, TResponse> duplex:
                    await duplex(reader, writer, context).ConfigureAwait(false);
                    break;

                default:
                    throw new InvalidOperationException($"No handler kind for {_handler.GetType()}.");
            }

            status = context.StatusFrom(null);
        }
        catch (Exception e)
        {
            status = context.StatusFrom(e);
            if (status.StatusCode == StatusCode.Unknown)
            {
                ServerLog.HandlerFailed(logger, e, _method.FullName);
            }
        }
        finally
        {
            writer.Complete();
        }

        RpcTelemetry.Stop(activity, status);
        try
        {
            context.Finish(status);
        }
        catch (InvalidOperationException e)
        {
            // Kestrel refused the status (the response was aborted underneath us); the stream reset tells the client.
            ServerLog.FinishFailed(logger, e, _method.FullName, status.StatusCode);
        }
    }

    private static async ValueTask WriteSingleAsync(ServerCallContext context, TResponse? response)
    {
        if (response is null)
        {
            throw new RpcException(StatusCode.Internal, "The handler returned no response message.");
        }

        if (context.Status.StatusCode != StatusCode.OK)
        {
            return; // The handler chose a failing status; a response message would contradict it.
        }

        // No flush: the message, the trailers and END_STREAM leave together when the request completes.
        await context.WriteMessageAsync(response, flush: false, context.CancellationToken).ConfigureAwait(false);
    }
}
