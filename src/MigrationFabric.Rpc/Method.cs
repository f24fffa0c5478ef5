using System.Buffers;
using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace MigrationFabric.Rpc;

/// <summary>Non-generic view of a method, for routing and reflection.</summary>
public interface IMethod
{
    /// <summary>The call kind.</summary>
    MethodType Type { get; }

    /// <summary>Fully-qualified service name, e.g. "mftest.v1.Echo".</summary>
    string ServiceName { get; }

    /// <summary>Method name within the service, e.g. "Say".</summary>
    string Name { get; }

    /// <summary>"service/method", e.g. "mftest.v1.Echo/Say".</summary>
    string FullName { get; }

    /// <summary>The protobuf descriptor the method was derived from, when there was one.</summary>
    MethodDescriptor? Descriptor { get; }
}

/// <summary>A typed gRPC method: its name, kind, and how its messages parse; shared by clients and servers.</summary>
public sealed class Method<TRequest, TResponse> : IMethod
    where TRequest : class, IMessage<TRequest>, new()
    where TResponse : class, IMessage<TResponse>, new()
{
    /// <summary>Creates a method without a descriptor (no validation against a .proto).</summary>
    public Method(MethodType type, string serviceName, string name)
        : this(type, serviceName, name, null)
    {
    }

    private Method(MethodType type, string serviceName, string name, MethodDescriptor? descriptor,
        Func<ReadOnlySequence<byte>, TRequest>? requestDeserializer = null, Func<ReadOnlySequence<byte>, TResponse>? responseDeserializer = null,
        Func<TRequest, Memory<byte>?>? requestFrameEncoder = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(serviceName);
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (serviceName.Contains('/', StringComparison.Ordinal) || name.Contains('/', StringComparison.Ordinal))
        {
            throw new ArgumentException($"Service '{serviceName}' and method '{name}' must not contain '/'.");
        }

        Type = type;
        ServiceName = serviceName;
        Name = name;
        FullName = serviceName + "/" + name;
        Path = "/" + FullName;
        Descriptor = descriptor;
        RequestParser = new MessageParser<TRequest>(static () => new TRequest());
        ResponseParser = new MessageParser<TResponse>(static () => new TResponse());
        var requestParser = RequestParser;
        var responseParser = ResponseParser;
        RequestDeserializer = requestDeserializer ?? (payload => requestParser.ParseFrom(payload));
        ResponseDeserializer = responseDeserializer ?? (payload => responseParser.ParseFrom(payload));
        RequestFrameEncoder = requestFrameEncoder;
    }

    /// <inheritdoc />
    public MethodType Type { get; }

    /// <inheritdoc />
    public string ServiceName { get; }

    /// <inheritdoc />
    public string Name { get; }

    /// <inheritdoc />
    public string FullName { get; }

    /// <summary>The HTTP/2 :path, "/service/method".</summary>
    public string Path { get; }

    /// <inheritdoc />
    public MethodDescriptor? Descriptor { get; }

    /// <summary>Parses requests.</summary>
    public MessageParser<TRequest> RequestParser { get; }

    /// <summary>Parses responses.</summary>
    public MessageParser<TResponse> ResponseParser { get; }

    /// <summary>Turns a received request payload into a message; <see cref="RequestParser"/> unless replaced by <see cref="WithDeserializers"/>.</summary>
    public Func<ReadOnlySequence<byte>, TRequest> RequestDeserializer { get; }

    /// <summary>Turns a received response payload into a message; <see cref="ResponseParser"/> unless replaced by <see cref="WithDeserializers"/>.</summary>
    public Func<ReadOnlySequence<byte>, TResponse> ResponseDeserializer { get; }

    /// <summary>Client request-stream writes: a request already serialized by the caller, or null to serialize it with protobuf; see <see cref="WithRequestFrameEncoder"/>.</summary>
    public Func<TRequest, Memory<byte>?>? RequestFrameEncoder { get; }

    /// <summary>
    /// This method with custom receive-side deserializers, for payloads worth parsing straight from the transport's buffers
    /// (e.g. copying 4 KiB pages from the sequence into their final place instead of into a ByteString first).
    /// The sequence is valid only during the call: consume it synchronously, keep no reference to it. An exception other
    /// than <see cref="RpcException"/> ends the call with INTERNAL and the exception's message.
    /// </summary>
    public Method<TRequest, TResponse> WithDeserializers(
        Func<ReadOnlySequence<byte>, TRequest>? requestDeserializer = null, Func<ReadOnlySequence<byte>, TResponse>? responseDeserializer = null) =>
        new(Type, ServiceName, Name, Descriptor, requestDeserializer ?? RequestDeserializer, responseDeserializer ?? ResponseDeserializer, RequestFrameEncoder);

    /// <summary>
    /// This method with a send-side encoder for request-stream writes (client and duplex streaming), for large messages the caller
    /// has already laid out in its own buffer (e.g. a page batch built in place in a pooled array): the encoder returns the whole
    /// gRPC frame, 5 bytes left free for the frame header (written by the channel) followed by the serialized message, or null to
    /// have the message serialized by protobuf as usual. The bytes are written as they are, without a copy; the caller keeps them
    /// unchanged until the write returns. The message must still be a valid serialization of the request (the peer parses it).
    /// </summary>
    public Method<TRequest, TResponse> WithRequestFrameEncoder(Func<TRequest, Memory<byte>?> requestFrameEncoder)
    {
        ArgumentNullException.ThrowIfNull(requestFrameEncoder);
        return new(Type, ServiceName, Name, Descriptor, RequestDeserializer, ResponseDeserializer, requestFrameEncoder);
    }

    /// <summary>
    /// The method named <paramref name="methodName"/> of a generated service descriptor (e.g. EchoReflection.Descriptor.Services[0]);
    /// its kind comes from the descriptor's streaming flags, and the type arguments must match its input and output types.
    /// </summary>
    public static Method<TRequest, TResponse> Create(ServiceDescriptor service, string methodName)
    {
        ArgumentNullException.ThrowIfNull(service);
        var descriptor = service.FindMethodByName(methodName)
            ?? throw new ArgumentException($"Service '{service.FullName}' has no method '{methodName}'; it has: {string.Join(", ", service.Methods.Select(m => m.Name))}.", nameof(methodName));
        return Create(descriptor);
    }

    /// <summary>The method a generated descriptor describes; the type arguments must match its input and output types.</summary>
    public static Method<TRequest, TResponse> Create(MethodDescriptor descriptor)
    {
        ArgumentNullException.ThrowIfNull(descriptor);
        var fullName = descriptor.Service.FullName + "/" + descriptor.Name;
        CheckType(fullName, "request", descriptor.InputType, typeof(TRequest));
        CheckType(fullName, "response", descriptor.OutputType, typeof(TResponse));
        return new Method<TRequest, TResponse>(TypeOf(descriptor), descriptor.Service.FullName, descriptor.Name, descriptor);
    }

    /// <summary>The call kind a descriptor's streaming flags mean.</summary>
    public static MethodType TypeOf(MethodDescriptor descriptor)
    {
        ArgumentNullException.ThrowIfNull(descriptor);
        return (descriptor.IsClientStreaming, descriptor.IsServerStreaming) switch
        {
            (false, false) => MethodType.Unary,
            (true, false) => MethodType.ClientStreaming,
            (false, true) => MethodType.ServerStreaming,
            _ => MethodType.DuplexStreaming,
        };
    }

    /// <inheritdoc />
    public override string ToString() => $"{Type} {FullName}";

    private static void CheckType(string method, string role, MessageDescriptor expected, Type actual)
    {
        if (expected.ClrType != actual)
        {
            throw new ArgumentException(
                $"Method '{method}' takes {role} type '{expected.FullName}' (C# {expected.ClrType?.FullName ?? "unknown"}), but was bound to {actual.FullName}.");
        }
    }
}
