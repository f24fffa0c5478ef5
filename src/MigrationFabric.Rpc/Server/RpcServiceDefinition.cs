using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace MigrationFabric.Rpc.Server;

/// <summary>A service's methods bound to their handlers, ready to add to an <see cref="RpcServer"/>.</summary>
public sealed class RpcServiceDefinition
{
    private RpcServiceDefinition(string name, ServiceDescriptor? descriptor, IReadOnlyList<IServerCallHandler> handlers)
    {
        Name = name;
        Descriptor = descriptor;
        Handlers = handlers;
    }

    /// <summary>Fully-qualified service name, e.g. "mftest.v1.Echo".</summary>
    public string Name { get; }

    /// <summary>The .proto descriptor, when the definition was built from one; reflection serves it.</summary>
    public ServiceDescriptor? Descriptor { get; }

    /// <summary>The bound methods.</summary>
    public IEnumerable<IMethod> Methods => Handlers.Select(h => h.Method);

    internal IReadOnlyList<IServerCallHandler> Handlers { get; }

    /// <summary>
    /// Starts a definition from a generated service descriptor (e.g. EchoReflection.Descriptor.Services[0]): methods are bound by name,
    /// and a handler whose kind or message types differ from the .proto is refused with an <see cref="ArgumentException"/>.
    /// </summary>
    public static Builder CreateBuilder(ServiceDescriptor descriptor)
    {
        ArgumentNullException.ThrowIfNull(descriptor);
        return new Builder(descriptor.FullName, descriptor);
    }

    /// <summary>Starts a definition without a descriptor: methods are bound from <see cref="Method{TRequest,TResponse}"/> objects; reflection cannot describe it.</summary>
    public static Builder CreateBuilder(string serviceName)
    {
        ArgumentException.ThrowIfNullOrEmpty(serviceName);
        return new Builder(serviceName, null);
    }

    /// <summary>Binds handlers to methods; <see cref="Build"/> makes the definition.</summary>
    public sealed class Builder
    {
        private readonly string _name;
        private readonly ServiceDescriptor? _descriptor;
        private readonly List<IServerCallHandler> _handlers = new();
        private readonly HashSet<string> _bound = new(StringComparer.Ordinal);

        internal Builder(string name, ServiceDescriptor? descriptor)
        {
            _name = name;
            _descriptor = descriptor;
        }

        /// <summary>Binds a unary handler to the descriptor's method <paramref name="methodName"/>.</summary>
        public Builder AddUnary<TRequest, TResponse>(string methodName, UnaryServerMethod<TRequest, TResponse> handler)
            where TRequest : class, IMessage<TRequest>, new()
            where TResponse : class, IMessage<TResponse>, new()
            => Add(FromDescriptor<TRequest, TResponse>(methodName, MethodType.Unary), handler);

        /// <summary>Binds a server-streaming handler to the descriptor's method <paramref name="methodName"/>.</summary>
        public Builder AddServerStreaming<TRequest, TResponse>(string methodName, ServerStreamingServerMethod<TRequest, TResponse> handler)
            where TRequest : class, IMessage<TRequest>, new()
            where TResponse : class, IMessage<TResponse>, new()
            => Add(FromDescriptor<TRequest, TResponse>(methodName, MethodType.ServerStreaming), handler);

        /// <summary>Binds a client-streaming handler to the descriptor's method <paramref name="methodName"/>.</summary>
        public Builder AddClientStreaming<TRequest, TResponse>(string methodName, ClientStreamingServerMethod<TRequest, TResponse> handler)
            where TRequest : class, IMessage<TRequest>, new()
            where TResponse : class, IMessage<TResponse>, new()
            => Add(FromDescriptor<TRequest, TResponse>(methodName, MethodType.ClientStreaming), handler);

        /// <summary>Binds a duplex handler to the descriptor's method <paramref name="methodName"/>.</summary>
        public Builder AddDuplexStreaming<TRequest, TResponse>(string methodName, DuplexStreamingServerMethod<TRequest, TResponse> handler)
            where TRequest : class, IMessage<TRequest>, new()
            where TResponse : class, IMessage<TResponse>, new()
            => Add(FromDescriptor<TRequest, TResponse>(methodName, MethodType.DuplexStreaming), handler);

        /// <summary>Binds a unary handler to a method object.</summary>
        public Builder AddUnary<TRequest, TResponse>(Method<TRequest, TResponse> method, UnaryServerMethod<TRequest, TResponse> handler)
            where TRequest : class, IMessage<TRequest>, new()
            where TResponse : class, IMessage<TResponse>, new()
            => Add(Check(method, MethodType.Unary), handler);

        /// <summary>Binds a server-streaming handler to a method object.</summary>
        public Builder AddServerStreaming<TRequest, TResponse>(Method<TRequest, TResponse> method, ServerStreamingServerMethod<TRequest, TResponse> handler)
            where TRequest : class, IMessage<TRequest>, new()
            where TResponse : class, IMessage<TResponse>, new()
            => Add(Check(method, MethodType.ServerStreaming), handler);

        /// <summary>Binds a client-streaming handler to a method object.</summary>
        public Builder AddClientStreaming<TRequest, TResponse>(Method<TRequest, TResponse> method, ClientStreamingServerMethod<TRequest, TResponse> handler)
            where TRequest : class, IMessage<TRequest>, new()
            where TResponse : class, IMessage<TResponse>, new()
            => Add(Check(method, MethodType.ClientStreaming), handler);

        /// <summary>Binds a duplex handler to a method object.</summary>
        public Builder AddDuplexStreaming<TRequest, TResponse>(Method<TRequest, TResponse> method, DuplexStreamingServerMethod<TRequest, TResponse> handler)
            where TRequest : class, IMessage<TRequest>, new()
            where TResponse : class, IMessage<TResponse>, new()
            => Add(Check(method, MethodType.DuplexStreaming), handler);

        /// <summary>The definition; methods of the descriptor left unbound answer UNIMPLEMENTED.</summary>
        public RpcServiceDefinition Build() => new(_name, _descriptor, _handlers.ToArray());

        private Method<TRequest, TResponse> FromDescriptor<TRequest, TResponse>(string methodName, MethodType kind)
            where TRequest : class, IMessage<TRequest>, new()
            where TResponse : class, IMessage<TResponse>, new()
        {
            if (_descriptor is null)
            {
                throw new InvalidOperationException($"Service '{_name}' was created without a descriptor; bind methods with a Method<TRequest, TResponse> instead of a name.");
            }

            return Check(Method<TRequest, TResponse>.Create(_descriptor, methodName), kind);
        }

        private Method<TRequest, TResponse> Check<TRequest, TResponse>(Method<TRequest, TResponse> method, MethodType kind)
            where TRequest : class, IMessage<TRequest>, new()
            where TResponse : class, IMessage<TResponse>, new()
        {
            ArgumentNullException.ThrowIfNull(method);
            if (!string.Equals(method.ServiceName, _name, StringComparison.Ordinal))
            {
                throw new ArgumentException($"Method '{method.FullName}' belongs to service '{method.ServiceName}', not '{_name}'.");
            }

            if (method.Type != kind)
            {
                throw new ArgumentException($"Method '{method.FullName}' is {method.Type} in its definition, but a {kind} handler was bound to it.");
            }

            if (_descriptor is not null && method.Descriptor is null)
            {
                // A hand-made method on a descriptor-backed service must still agree with the .proto.
                Check(Method<TRequest, TResponse>.Create(_descriptor, method.Name), kind);
            }

            return method;
        }

        private Builder Add<TRequest, TResponse>(Method<TRequest, TResponse> method, Delegate handler)
            where TRequest : class, IMessage<TRequest>, new()
            where TResponse : class, IMessage<TResponse>, new()
        {
            ArgumentNullException.ThrowIfNull(handler);
            if (!_bound.Add(method.Name))
            {
                throw new ArgumentException($"Method '{method.FullName}' already has a handler.");
            }

            _handlers.Add(new ServerCallHandler<TRequest, TResponse>(method, handler));
            return this;
        }
    }
}
