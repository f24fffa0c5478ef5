using MigrationFabric.Grains.Activation;
using MigrationFabric.Grains.GrainDirectory;
using MigrationFabric.Grains.Invocation;
using MigrationFabric.Grains.Membership;
using MigrationFabric.Grains.Runtime;
using MigrationFabric.Grains.Serialization;

namespace MigrationFabric.Grains.Messaging;

/// <summary>Kinds of silo requests.</summary>
internal enum MessageKind : byte
{
    /// <summary>Deliver to the local activation (the sender already routed).</summary>
    GrainCall = 1,

    /// <summary>From a cluster client: route the call from this silo (it acts as the gateway).</summary>
    GatewayCall = 2,
    DirectoryLookup = 3,
    DirectoryRegister = 4,
    DirectoryUnregister = 5,
    DirectoryReport = 6,
    Ping = 7,
}

/// <summary>Status byte that starts every response.</summary>
internal enum ResponseStatus : byte { Ok = 0, Error = 1, Forward = 2 }

/// <summary>Encodes silo requests and responses (layout in the project README, "Messaging") and answers incoming ones.</summary>
internal sealed class SiloMessenger(SiloRuntime runtime, ISiloTransport transport) : ISiloMessageHandler
{
    // ---- outgoing ---------------------------------------------------------------------------------

    public Task<object?> CallGrainAsync(SiloAddress target, MessageKind kind, GrainId id, GrainInterfaceDescriptor descriptor,
        GrainMethodDescriptor method, object?[] args, string? traceParent, string? traceState, CancellationToken cancellationToken) =>
        SendGrainCallAsync(transport, target, kind, id, descriptor, method, args, traceParent, traceState, cancellationToken);

    /// <summary>Encodes a grain call, sends it and decodes the response (shared with the cluster client).</summary>
    public static async Task<object?> SendGrainCallAsync(ISiloTransport transport, SiloAddress target, MessageKind kind, GrainId id,
        GrainInterfaceDescriptor descriptor, GrainMethodDescriptor method, object?[] args, string? traceParent, string? traceState,
        CancellationToken cancellationToken)
    {
        var w = new GrainWriter();
        w.WriteByte((byte)kind);
        w.WriteString(descriptor.Name);
        w.WriteString(id.Key);
        w.WriteVarUInt64((ulong)method.Id);
        w.WriteString(traceParent);
        w.WriteString(traceState);
        descriptor.WriteArguments(method.Id, args, w);
        var response = await transport.SendAsync(target, w.WrittenMemory, cancellationToken).ConfigureAwait(false);
        return ReadGrainResponse(response.Span, id, descriptor, method);
    }

    private static object? ReadGrainResponse(ReadOnlySpan<byte> response, GrainId id, GrainInterfaceDescriptor descriptor, GrainMethodDescriptor method)
    {
        var r = new GrainReader(response);
        var status = (ResponseStatus)r.ReadByte();
        switch (status)
        {
            case ResponseStatus.Ok:
                return descriptor.ReadResult(method.Id, ref r);
            case ResponseStatus.Forward:
                throw new ActivationForwardedException(id, SiloAddress.Parse(r.ReadRequiredString("forward address")));
            case ResponseStatus.Error:
                throw ReadError(ref r);
            default:
                throw new GrainSerializationException($"unknown response status {(byte)status}");
        }
    }

    public async Task<DirectoryResult> LookupAsync(SiloAddress owner, GrainId id, CancellationToken cancellationToken)
    {
        var w = new GrainWriter(64);
        w.WriteByte((byte)MessageKind.DirectoryLookup);
        WriteGrainId(w, id);
        return ReadDirectoryResult(await SendAsync(owner, w, cancellationToken).ConfigureAwait(false));
    }

    public async Task<DirectoryResult> RegisterAsync(SiloAddress owner, GrainId id, SiloAddress silo, CancellationToken cancellationToken)
    {
        var w = new GrainWriter(96);
        w.WriteByte((byte)MessageKind.DirectoryRegister);
        WriteGrainId(w, id);
        w.WriteString(silo.ToString());
        return ReadDirectoryResult(await SendAsync(owner, w, cancellationToken).ConfigureAwait(false));
    }

    public async Task UnregisterAsync(SiloAddress owner, GrainId id, SiloAddress silo, CancellationToken cancellationToken)
    {
        var w = new GrainWriter(96);
        w.WriteByte((byte)MessageKind.DirectoryUnregister);
        WriteGrainId(w, id);
        w.WriteString(silo.ToString());
        ReadOk(await SendAsync(owner, w, cancellationToken).ConfigureAwait(false));
    }

    public async Task<List<GrainId>> ReportAsync(SiloAddress owner, long version, SiloAddress from, IReadOnlyList<GrainId> ids, CancellationToken cancellationToken)
    {
        var w = new GrainWriter();
        w.WriteByte((byte)MessageKind.DirectoryReport);
        w.WriteVarInt64(version);
        w.WriteString(from.ToString());
        w.WriteVarUInt64((ulong)ids.Count);
        foreach (var id in ids) WriteGrainId(w, id);
        var response = await SendAsync(owner, w, cancellationToken).ConfigureAwait(false);
        return ReadIds(response.Span);
    }

    public async Task PingAsync(SiloAddress target, CancellationToken cancellationToken)
    {
        var w = new GrainWriter(64);
        w.WriteByte((byte)MessageKind.Ping);
        w.WriteString(target.ToString());
        ReadOk(await SendAsync(target, w, cancellationToken).ConfigureAwait(false));
    }

    private Task<ReadOnlyMemory<byte>> SendAsync(SiloAddress target, GrainWriter w, CancellationToken cancellationToken) =>
        transport.SendAsync(target, w.WrittenMemory, cancellationToken);

    private static DirectoryResult ReadDirectoryResult(ReadOnlyMemory<byte> response)
    {
        var r = new GrainReader(response.Span);
        CheckOk(ref r);
        bool isOwner = r.ReadByte() == 1;
        var silo = r.ReadString();
        long version = r.ReadVarInt64();
        return new DirectoryResult(isOwner, silo is null ? null : SiloAddress.Parse(silo), version);
    }

    private static List<GrainId> ReadIds(ReadOnlySpan<byte> response)
    {
        var r = new GrainReader(response);
        CheckOk(ref r);
        return ReadIdList(ref r);
    }

    private static void ReadOk(ReadOnlyMemory<byte> response)
    {
        var r = new GrainReader(response.Span);
        CheckOk(ref r);
    }

    private static void CheckOk(ref GrainReader r)
    {
        var status = (ResponseStatus)r.ReadByte();
        if (status == ResponseStatus.Error) throw ReadError(ref r);
        if (status != ResponseStatus.Ok) throw new GrainSerializationException($"unexpected response status {status}");
    }

    private static RemoteGrainException ReadError(ref GrainReader r) =>
        new(r.ReadRequiredString("error type"), r.ReadString() ?? "", r.ReadString());

    private static void WriteGrainId(GrainWriter w, GrainId id)
    {
        w.WriteString(id.Type);
        w.WriteString(id.Key);
    }

    private static GrainId ReadGrainId(ref GrainReader r)
    {
        var type = r.ReadRequiredString("grain type");
        var key = r.ReadRequiredString("grain key");
        try
        {
            return new GrainId(type, key);
        }
        catch (ArgumentException e)
        {
            throw new GrainSerializationException($"grain id '{type}/{key}' is invalid: {e.Message}", e);
        }
    }

    private static List<GrainId> ReadIdList(ref GrainReader r)
    {
        ulong count = r.ReadVarUInt64();
        if (count > (ulong)r.Remaining)
            throw new GrainSerializationException($"an id list claims {count} entries in {r.Remaining} bytes");
        var ids = new List<GrainId>((int)count);
        for (ulong i = 0; i < count; i++) ids.Add(ReadGrainId(ref r));
        return ids;
    }

    // ---- incoming ---------------------------------------------------------------------------------

    public async Task<ReadOnlyMemory<byte>> HandleAsync(ReadOnlyMemory<byte> request, CancellationToken cancellationToken)
    {
        var w = new GrainWriter();
        try
        {
            await HandleCoreAsync(request, w, cancellationToken).ConfigureAwait(false);
        }
        catch (ActivationForwardedException f)
        {
            w.Reset();
            w.WriteByte((byte)ResponseStatus.Forward);
            w.WriteString(f.Winner.ToString());
        }
        catch (Exception e)
        {
            w.Reset();
            w.WriteByte((byte)ResponseStatus.Error);
            var error = e is RemoteGrainException remote ? (remote.RemoteType, remote.RemoteMessage) : (e.GetType().FullName ?? e.GetType().Name, e.Message);
            w.WriteString(error.Item1);
            w.WriteString(error.Item2);
            w.WriteString(e.StackTrace);
        }
        return w.WrittenMemory;
    }

    private async Task HandleCoreAsync(ReadOnlyMemory<byte> request, GrainWriter w, CancellationToken cancellationToken)
    {
        if (request.IsEmpty) throw new GrainSerializationException("the request is empty");
        var kind = (MessageKind)request.Span[0];
        switch (kind)
        {
            case MessageKind.GrainCall:
            case MessageKind.GatewayCall:
            {
                var (id, descriptor, method, args, tp, ts) = DecodeCall(request);
                object? result = kind == MessageKind.GrainCall
                    ? await runtime.Catalog.InvokeAsync(id, descriptor, method, args, tp, ts).ConfigureAwait(false)
                    : await runtime.Router.RouteFromGatewayAsync(id, descriptor, method, args, tp, ts).ConfigureAwait(false);
                w.WriteByte((byte)ResponseStatus.Ok);
                descriptor.WriteResult(method.Id, result, w);
                return;
            }
            case MessageKind.DirectoryLookup:
            {
                var id = DecodeId(request, out _);
                WriteDirectoryResult(w, await runtime.Locator.Partition.LookupAsync(id, cancellationToken).ConfigureAwait(false));
                return;
            }
            case MessageKind.DirectoryRegister:
            {
                var id = DecodeId(request, out var silo);
                WriteDirectoryResult(w, await runtime.Locator.Partition.RegisterAsync(id, silo!, cancellationToken).ConfigureAwait(false));
                return;
            }
            case MessageKind.DirectoryUnregister:
            {
                var id = DecodeId(request, out var silo);
                runtime.Locator.Partition.Unregister(id, silo!);
                w.WriteByte((byte)ResponseStatus.Ok);
                return;
            }
            case MessageKind.DirectoryReport:
            {
                var (version, from, ids) = DecodeReport(request);
                var conflicts = await runtime.Locator.Partition.ApplyReportAsync(version, from, ids, cancellationToken).ConfigureAwait(false);
                w.WriteByte((byte)ResponseStatus.Ok);
                w.WriteVarUInt64((ulong)conflicts.Count);
                foreach (var id in conflicts) WriteGrainId(w, id);
                return;
            }
            case MessageKind.Ping:
            {
                var expected = DecodePing(request);
                if (!runtime.Self.Equals(expected))
                    throw new InvalidOperationException($"Ping for silo {expected} reached silo {runtime.Self} (another generation on that endpoint).");
                w.WriteByte((byte)ResponseStatus.Ok);
                return;
            }
            default:
                throw new GrainSerializationException($"unknown message kind {(byte)kind}");
        }
    }

    private (GrainId, GrainInterfaceDescriptor, GrainMethodDescriptor, object?[], string?, string?) DecodeCall(ReadOnlyMemory<byte> request)
    {
        var r = new GrainReader(request.Span);
        r.ReadByte();
        var iface = r.ReadRequiredString("grain interface");
        var key = r.ReadRequiredString("grain key");
        int methodId = checked((int)r.ReadVarUInt64());
        var tp = r.ReadString();
        var ts = r.ReadString();
        var descriptor = runtime.Interfaces.Find(iface)
            ?? throw new GrainRoutingException($"Silo {runtime.Self} has no grain registered for interface {iface}.");
        var method = descriptor.GetMethod(methodId);
        var args = descriptor.ReadArguments(methodId, ref r);
        return (new GrainId(iface, key), descriptor, method, args, tp, ts);
    }

    private static GrainId DecodeId(ReadOnlyMemory<byte> request, out SiloAddress? silo)
    {
        var r = new GrainReader(request.Span);
        r.ReadByte();
        var id = ReadGrainId(ref r);
        silo = r.Remaining > 0 ? SiloAddress.Parse(r.ReadRequiredString("silo")) : null;
        return id;
    }

    private static (long, SiloAddress, List<GrainId>) DecodeReport(ReadOnlyMemory<byte> request)
    {
        var r = new GrainReader(request.Span);
        r.ReadByte();
        long version = r.ReadVarInt64();
        var from = SiloAddress.Parse(r.ReadRequiredString("reporting silo"));
        return (version, from, ReadIdList(ref r));
    }

    private static SiloAddress DecodePing(ReadOnlyMemory<byte> request)
    {
        var r = new GrainReader(request.Span);
        r.ReadByte();
        return SiloAddress.Parse(r.ReadRequiredString("pinged silo"));
    }

    private static void WriteDirectoryResult(GrainWriter w, DirectoryResult result)
    {
        w.WriteByte((byte)ResponseStatus.Ok);
        w.WriteByte(result.IsOwner ? (byte)1 : (byte)0);
        w.WriteString(result.Silo?.ToString());
        w.WriteVarInt64(result.Version);
    }
}
