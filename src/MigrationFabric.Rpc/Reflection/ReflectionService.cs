using Google.Protobuf;
using Google.Protobuf.Reflection;
using MigrationFabric.Rpc.Reflection.V1;
using MigrationFabric.Rpc.Server;

namespace MigrationFabric.Rpc.Reflection;

/// <summary>
/// gRPC server reflection (grpc.reflection.v1 and v1alpha) over the descriptors of a server's services: lists services and returns
/// serialized FileDescriptorProtos by file name or by symbol, with their dependencies, so tools like grpcurl can call the server.
/// </summary>
public sealed class ReflectionService
{
    private readonly string[] _serviceNames;
    private readonly Dictionary<string, FileDescriptor> _filesByName = new(StringComparer.Ordinal);
    private readonly Dictionary<string, FileDescriptor> _filesBySymbol = new(StringComparer.Ordinal);
    private readonly List<FieldDescriptor> _extensions = new();
    private readonly HashSet<string> _messageTypes = new(StringComparer.Ordinal);

    /// <summary>Indexes the services' files and everything they import.</summary>
    public ReflectionService(IEnumerable<RpcServiceDefinition> services)
    {
        ArgumentNullException.ThrowIfNull(services);
        var names = new List<string>();
        foreach (var service in services)
        {
            names.Add(service.Name);
            if (service.Descriptor is not null)
            {
                AddFile(service.Descriptor.File);
            }
        }

        _serviceNames = names.ToArray();
    }

    /// <summary>The grpc.reflection.v1.ServerReflection definition.</summary>
    public RpcServiceDefinition CreateV1Definition() =>
        RpcServiceDefinition.CreateBuilder(ReflectionReflection.Descriptor.Services[0])
            .AddDuplexStreaming<ServerReflectionRequest, ServerReflectionResponse>("ServerReflectionInfo", (requests, responses, context) =>
                ServeAsync(requests, responses, Answer, context))
            .Build();

    /// <summary>The grpc.reflection.v1alpha.ServerReflection definition (same wire shape as v1, older package name).</summary>
    public RpcServiceDefinition CreateV1AlphaDefinition() =>
        RpcServiceDefinition.CreateBuilder(V1Alpha.ReflectionReflection.Descriptor.Services[0])
            .AddDuplexStreaming<V1Alpha.ServerReflectionRequest, V1Alpha.ServerReflectionResponse>("ServerReflectionInfo", (requests, responses, context) =>
                ServeAsync(requests, responses, request =>
                {
                    // v1alpha and v1 messages are identical on the wire, so one implementation answers both.
                    var answer = Answer(ServerReflectionRequest.Parser.ParseFrom(request.ToByteString()));
                    return V1Alpha.ServerReflectionResponse.Parser.ParseFrom(answer.ToByteString());
                }, context))
            .Build();

    /// <summary>Answers one reflection request.</summary>
    public ServerReflectionResponse Answer(ServerReflectionRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var response = new ServerReflectionResponse { ValidHost = request.Host, OriginalRequest = request };
        switch (request.MessageRequestCase)
        {
            case ServerReflectionRequest.MessageRequestOneofCase.ListServices:
                var list = new ListServiceResponse();
                foreach (var name in _serviceNames)
                {
                    list.Service.Add(new ServiceResponse { Name = name });
                }

                response.ListServicesResponse = list;
                break;
            case ServerReflectionRequest.MessageRequestOneofCase.FileByFilename:
                if (_filesByName.TryGetValue(request.FileByFilename, out var byName))
                {
                    response.FileDescriptorResponse = WithDependencies(byName);
                }
                else
                {
                    response.ErrorResponse = NotFound($"File '{request.FileByFilename}' not found.");
                }

                break;
            case ServerReflectionRequest.MessageRequestOneofCase.FileContainingSymbol:
                if (_filesBySymbol.TryGetValue(request.FileContainingSymbol.TrimStart('.'), out var bySymbol))
                {
                    response.FileDescriptorResponse = WithDependencies(bySymbol);
                }
                else
                {
                    response.ErrorResponse = NotFound($"Symbol '{request.FileContainingSymbol}' not found.");
                }

                break;
            case ServerReflectionRequest.MessageRequestOneofCase.FileContainingExtension:
                var wanted = request.FileContainingExtension;
                var extension = _extensions.Find(e => e.FieldNumber == wanted.ExtensionNumber
                    && string.Equals(e.ExtendeeType?.FullName, wanted.ContainingType.TrimStart('.'), StringComparison.Ordinal));
                if (extension is not null)
                {
                    response.FileDescriptorResponse = WithDependencies(extension.File);
                }
                else
                {
                    response.ErrorResponse = NotFound($"Extension {wanted.ExtensionNumber} of '{wanted.ContainingType}' not found.");
                }

                break;
            case ServerReflectionRequest.MessageRequestOneofCase.AllExtensionNumbersOfType:
                var typeName = request.AllExtensionNumbersOfType.TrimStart('.');
                if (_messageTypes.Contains(typeName))
                {
                    var numbers = new ExtensionNumberResponse { BaseTypeName = typeName };
                    foreach (var e in _extensions)
                    {
                        if (string.Equals(e.ExtendeeType?.FullName, typeName, StringComparison.Ordinal))
                        {
                            numbers.ExtensionNumber.Add(e.FieldNumber);
                        }
                    }

                    response.AllExtensionNumbersResponse = numbers;
                }
                else
                {
                    response.ErrorResponse = NotFound($"Message type '{request.AllExtensionNumbersOfType}' not found.");
                }

                break;
            default:
                response.ErrorResponse = new ErrorResponse { ErrorCode = (int)StatusCode.InvalidArgument, ErrorMessage = "The request names no reflection query." };
                break;
        }

        return response;
    }

    private static async Task ServeAsync<TRequest, TResponse>(
        IAsyncStreamReader<TRequest> requests, IServerStreamWriter<TResponse> responses, Func<TRequest, TResponse> answer, ServerCallContext context)
    {
        while (await requests.MoveNext(context.CancellationToken).ConfigureAwait(false))
        {
            await responses.WriteAsync(answer(requests.Current), context.CancellationToken).ConfigureAwait(false);
        }
    }

    private static ErrorResponse NotFound(string message) => new() { ErrorCode = (int)StatusCode.NotFound, ErrorMessage = message };

    private static FileDescriptorResponse WithDependencies(FileDescriptor file)
    {
        var response = new FileDescriptorResponse();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var pending = new Stack<FileDescriptor>();
        pending.Push(file);
        while (pending.Count > 0)
        {
            var next = pending.Pop();
            if (!seen.Add(next.Name))
            {
                continue;
            }

            response.FileDescriptorProto.Add(next.SerializedData);
            foreach (var dependency in next.Dependencies)
            {
                pending.Push(dependency);
            }
        }

        return response;
    }

    private void AddFile(FileDescriptor file)
    {
        if (!_filesByName.TryAdd(file.Name, file))
        {
            return;
        }

        foreach (var service in file.Services)
        {
            _filesBySymbol.TryAdd(service.FullName, file);
            foreach (var method in service.Methods)
            {
                _filesBySymbol.TryAdd(service.FullName + "." + method.Name, file);
            }
        }

        foreach (var message in file.MessageTypes)
        {
            AddMessage(message, file);
        }

        foreach (var enumType in file.EnumTypes)
        {
            _filesBySymbol.TryAdd(enumType.FullName, file);
        }

        foreach (var extension in file.Extensions.UnorderedExtensions)
        {
            _filesBySymbol.TryAdd(extension.FullName, file);
            _extensions.Add(extension);
        }

        foreach (var dependency in file.Dependencies)
        {
            AddFile(dependency);
        }
    }

    private void AddMessage(MessageDescriptor message, FileDescriptor file)
    {
        _filesBySymbol.TryAdd(message.FullName, file);
        _messageTypes.Add(message.FullName);
        foreach (var field in message.Fields.InDeclarationOrder())
        {
            _filesBySymbol.TryAdd(field.FullName, file);
        }

        foreach (var nested in message.NestedTypes)
        {
            AddMessage(nested, file);
        }

        foreach (var enumType in message.EnumTypes)
        {
            _filesBySymbol.TryAdd(enumType.FullName, file);
        }

        foreach (var extension in message.Extensions.UnorderedExtensions)
        {
            _filesBySymbol.TryAdd(extension.FullName, file);
            _extensions.Add(extension);
        }
    }
}
