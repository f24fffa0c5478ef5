using System.Runtime.CompilerServices;

namespace MigrationFabric.Rpc.Client;

/// <summary>What every client call object exposes besides its messages.</summary>
internal interface IClientCallState : IDisposable
{
    Task<Metadata> ResponseHeadersAsync { get; }

    Status GetStatus();

    Metadata GetTrailers();
}

/// <summary>A unary call in flight; await it (or <see cref="ResponseAsync"/>) for the response.</summary>
public sealed class AsyncUnaryCall<TResponse> : IDisposable
{
    private readonly IClientCallState _state;

    internal AsyncUnaryCall(IClientCallState state, Task<TResponse> response)
    {
        _state = state;
        ResponseAsync = response;
    }

    /// <summary>The response; faults with <see cref="RpcException"/> when the call fails.</summary>
    public Task<TResponse> ResponseAsync { get; }

    /// <summary>The server's response headers (custom metadata).</summary>
    public Task<Metadata> ResponseHeadersAsync => _state.ResponseHeadersAsync;

    /// <summary>The awaiter of <see cref="ResponseAsync"/>.</summary>
    public TaskAwaiter<TResponse> GetAwaiter() => ResponseAsync.GetAwaiter();

    /// <summary>The final status; throws <see cref="InvalidOperationException"/> before the call has ended.</summary>
    public Status GetStatus() => _state.GetStatus();

    /// <summary>The trailers; throws <see cref="InvalidOperationException"/> before the call has ended.</summary>
    public Metadata GetTrailers() => _state.GetTrailers();

    /// <summary>Cancels the call if it is still running and releases its stream.</summary>
    public void Dispose() => _state.Dispose();
}

/// <summary>A server-streaming call in flight; read <see cref="ResponseStream"/> to its end.</summary>
public sealed class AsyncServerStreamingCall<TResponse> : IDisposable
{
    private readonly IClientCallState _state;

    internal AsyncServerStreamingCall(IClientCallState state, IAsyncStreamReader<TResponse> responseStream)
    {
        _state = state;
        ResponseStream = responseStream;
    }

    /// <summary>The responses; MoveNext throws <see cref="RpcException"/> when the call fails.</summary>
    public IAsyncStreamReader<TResponse> ResponseStream { get; }

    /// <summary>The server's response headers (custom metadata).</summary>
    public Task<Metadata> ResponseHeadersAsync => _state.ResponseHeadersAsync;

    /// <summary>The final status; throws <see cref="InvalidOperationException"/> before the call has ended.</summary>
    public Status GetStatus() => _state.GetStatus();

    /// <summary>The trailers; throws <see cref="InvalidOperationException"/> before the call has ended.</summary>
    public Metadata GetTrailers() => _state.GetTrailers();

    /// <summary>Cancels the call if it is still running and releases its stream.</summary>
    public void Dispose() => _state.Dispose();
}

/// <summary>A client-streaming call in flight: write to <see cref="RequestStream"/>, complete it, then await the response.</summary>
public sealed class AsyncClientStreamingCall<TRequest, TResponse> : IDisposable
{
    private readonly IClientCallState _state;

    internal AsyncClientStreamingCall(IClientCallState state, IClientStreamWriter<TRequest> requestStream, Task<TResponse> response)
    {
        _state = state;
        RequestStream = requestStream;
        ResponseAsync = response;
    }

    /// <summary>The requests; call CompleteAsync after the last one.</summary>
    public IClientStreamWriter<TRequest> RequestStream { get; }

    /// <summary>The response; faults with <see cref="RpcException"/> when the call fails.</summary>
    public Task<TResponse> ResponseAsync { get; }

    /// <summary>The server's response headers (custom metadata).</summary>
    public Task<Metadata> ResponseHeadersAsync => _state.ResponseHeadersAsync;

    /// <summary>The awaiter of <see cref="ResponseAsync"/>.</summary>
    public TaskAwaiter<TResponse> GetAwaiter() => ResponseAsync.GetAwaiter();

    /// <summary>The final status; throws <see cref="InvalidOperationException"/> before the call has ended.</summary>
    public Status GetStatus() => _state.GetStatus();

    /// <summary>The trailers; throws <see cref="InvalidOperationException"/> before the call has ended.</summary>
    public Metadata GetTrailers() => _state.GetTrailers();

    /// <summary>Cancels the call if it is still running and releases its stream.</summary>
    public void Dispose() => _state.Dispose();
}

/// <summary>A duplex call in flight: write <see cref="RequestStream"/> and read <see cref="ResponseStream"/> independently.</summary>
public sealed class AsyncDuplexStreamingCall<TRequest, TResponse> : IDisposable
{
    private readonly IClientCallState _state;

    internal AsyncDuplexStreamingCall(IClientCallState state, IClientStreamWriter<TRequest> requestStream, IAsyncStreamReader<TResponse> responseStream)
    {
        _state = state;
        RequestStream = requestStream;
        ResponseStream = responseStream;
    }

    /// <summary>The requests; call CompleteAsync after the last one.</summary>
    public IClientStreamWriter<TRequest> RequestStream { get; }

    /// <summary>The responses; MoveNext throws <see cref="RpcException"/> when the call fails.</summary>
    public IAsyncStreamReader<TResponse> ResponseStream { get; }

    /// <summary>The server's response headers (custom metadata).</summary>
    public Task<Metadata> ResponseHeadersAsync => _state.ResponseHeadersAsync;

    /// <summary>The final status; throws <see cref="InvalidOperationException"/> before the call has ended.</summary>
    public Status GetStatus() => _state.GetStatus();

    /// <summary>The trailers; throws <see cref="InvalidOperationException"/> before the call has ended.</summary>
    public Metadata GetTrailers() => _state.GetTrailers();

    /// <summary>Cancels the call if it is still running and releases its stream.</summary>
    public void Dispose() => _state.Dispose();
}
