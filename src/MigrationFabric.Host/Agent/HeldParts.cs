namespace MigrationFabric.Host.Agent;

using System.Collections.Concurrent;
using MigrationFabric.Host.Errors;
using MigrationFabric.Host.Hypervisor;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.MultiHost;
using MigrationFabric.Migration.RemotePaging;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Rpc;
using MigrationFabric.Rpc.Client;

/// <summary>One VM's part held here for another host: a split sub-host's pages or a scatter-gather intermediate's blocks.</summary>
public sealed class HeldPart
{
    private RemotePageStore? _store;

    internal HeldPart(string migrationId, string vm, string role, long reservedBytes, GuestMemory memory)
    {
        MigrationId = migrationId;
        Vm = vm;
        Role = role;
        ReservedBytes = reservedBytes;
        Memory = memory;
    }

    /// <summary>The migration that brought it.</summary>
    public string MigrationId { get; }

    /// <summary>The VM.</summary>
    public string Vm { get; }

    /// <summary>"sub-host" or "intermediate".</summary>
    public string Role { get; }

    /// <summary>Budget reserved for it here.</summary>
    public long ReservedBytes { get; }

    /// <summary>The VM-sized memory holding the part (only held pages take RAM).</summary>
    public GuestMemory Memory { get; }

    /// <summary>The incoming part of the migration (its id + <see cref="SplitSubHost.Suffix"/>).</summary>
    public IncomingMigration Incoming { get; internal set; } = null!;

    /// <summary>Serves the VM's host (RemotePages / StorePages) once the part switched over; null before.</summary>
    public RemotePageStore? Store { get => Volatile.Read(ref _store); internal set => Volatile.Write(ref _store, value); }

    /// <summary>Bytes held in RAM here.</summary>
    public long HeldBytes => Memory.ResidentPages * Page.Size;
}

/// <summary>Parts of VMs this host holds for others (split sub-host, scatter-gather intermediate): memory, budget reservation and data-plane hold, released as one.</summary>
public sealed class HeldParts(string hostName, LocalHypervisor hypervisor, PagesService pages, Func<string> endpoint) : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, HeldPart> _parts = new(StringComparer.Ordinal);

    /// <summary>Parts held, by VM name.</summary>
    public IReadOnlyDictionary<string, HeldPart> Parts => _parts;

    /// <summary>Bytes held in RAM for other hosts.</summary>
    public long HeldBytes
    {
        get
        {
            long n = 0;
            foreach (var p in _parts.Values) n += p.HeldBytes;
            return n;
        }
    }

    /// <summary>Reserves <paramref name="reserveBytes"/> (FAILED_PRECONDITION when there is no room) and expects migration <paramref name="migrationId"/>'s part of VM <paramref name="vm"/>; a failed or aborted part releases itself.</summary>
    public HeldPart Prepare(string migrationId, string vm, long vmBytes, long reserveBytes, string role)
    {
        if (_parts.ContainsKey(vm) || hypervisor.Find(vm) is not null)
            throw FabricException.Precondition($"host '{hostName}' already holds VM '{vm}' or part of it; it cannot also be its {role}.");
        hypervisor.Reserve($"{vm} ({role})", reserveBytes, StatusCode.FailedPrecondition);
        GuestMemory? memory = null;
        try
        {
            memory = new GuestMemory(vmBytes);
            var part = new HeldPart(migrationId, vm, role, reserveBytes, memory);
            if (!_parts.TryAdd(vm, part)) throw FabricException.Precondition($"host '{hostName}' already holds part of VM '{vm}'.");
            // No vCPU ever runs here: the MMU only satisfies IncomingMigration.
            var mmu = new SoftwareMmu(memory);
            var incoming = new IncomingMigration(migrationId + SplitSubHost.Suffix, vm, memory, mmu, new IncomingMigrationOptions
            {
                Resume = (_, _) =>
                {
                    part.Store = pages.Hold(new RemotePageStore(vm, memory));
                    return Task.CompletedTask;
                },
            });
            part.Incoming = incoming;
            incoming.Completion.ContinueWith(t =>
            {
                mmu.Dispose();
                if (!t.IsCompletedSuccessfully) _ = ReleaseAsync(vm, migrationId);
            }, TaskScheduler.Default);
            pages.Accept(incoming);
            return part;
        }
        catch
        {
            if (_parts.TryGetValue(vm, out var p) && p.Memory == memory) _parts.TryRemove(vm, out _);
            memory?.Dispose();
            hypervisor.Release(reserveBytes);
            throw;
        }
    }

    /// <summary>Stops holding VM <paramref name="vm"/>'s part (only migration <paramref name="migrationId"/>'s when given): discards an unfinished incoming part, frees the memory and the reservation. False when none was held.</summary>
    public async Task<bool> ReleaseAsync(string vm, string? migrationId = null)
    {
        if (!_parts.TryGetValue(vm, out var part) || (migrationId is not null && part.MigrationId != migrationId)) return false;
        if (!_parts.TryRemove(new(vm, part))) return false;
        if (!part.Incoming.Completion.IsCompleted) await AbortIncomingAsync(part.Incoming.MigrationId).ConfigureAwait(false);
        var store = part.Store;
        if (store is not null) pages.Release(store);
        _ = Task.Run(async () =>
        {
            // Serving calls that found the store before it left may still be inside the memory: unmap only after them.
            if (store is not null) await store.ReleaseAsync().ConfigureAwait(false);
            // Margin for the part's other readers (its finished incoming migration's last acks and integrity replies), which hold no lease.
            await Task.Delay(TimeSpan.FromSeconds(1)).ConfigureAwait(false);
            part.Memory.Dispose();
        });
        hypervisor.Release(part.ReservedBytes);
        return true;
    }

    /// <summary>Discards an unfinished incoming part through this agent's own data plane (the one way to abort it).</summary>
    private async Task AbortIncomingAsync(string migrationId)
    {
        try
        {
            using var channel = new RpcChannel(new Uri(endpoint()), new RpcChannelOptions());
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await channel.AsyncUnaryCall(PagesContract.AbortMigration, new AbortMigrationRequest { MigrationId = migrationId, Reason = "the part held here was released" },
                new CallOptions(CancellationToken: timeout.Token)).ResponseAsync.ConfigureAwait(false);
        }
        catch (Exception e) when (e is RpcException or OperationCanceledException or IOException or HttpRequestException or UriFormatException)
        {
            // The agent is stopping: its data plane goes with the part.
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        foreach (var vm in _parts.Keys.ToArray()) await ReleaseAsync(vm).ConfigureAwait(false);
    }
}
