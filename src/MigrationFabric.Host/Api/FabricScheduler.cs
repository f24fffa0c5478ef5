namespace MigrationFabric.Host.Api;

using Google.Protobuf.WellKnownTypes;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Grains;
using MigrationFabric.Grains.Membership;
using MigrationFabric.Host.Agent;
using MigrationFabric.Host.Errors;
using MigrationFabric.Host.Grains;
using MigrationFabric.Host.Hypervisor;
using MigrationFabric.Host.Migrations;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Rpc;
using MigrationFabric.Rpc.Client;
using Host = MigrationFabric.Contracts.V1.Host;
using Migration = MigrationFabric.Contracts.V1.Migration;

/// <summary>The scheduler API's logic on one agent: validates requests and drives the grains (any agent answers for the whole cluster).</summary>
public sealed class FabricScheduler(IGrainFactory grains, Func<MembershipSnapshot> view)
{
    /// <summary>Smallest VM the fabric creates: 16 MiB.</summary>
    public const ulong MinVmBytes = 16UL << 20;

    /// <summary>Largest VM the fabric creates: 1 TiB.</summary>
    public const ulong MaxVmBytes = 1UL << 40;

    private IRegistryGrain Registry => grains.GetGrain<IRegistryGrain>(RegistryKey.Value);

    /// <summary>Names of the active hosts, sorted.</summary>
    public IReadOnlyList<string> ActiveHosts()
    {
        var snapshot = view();
        var names = new List<string>();
        foreach (var silo in snapshot.ActiveSilos)
            if (snapshot.Entries.TryGetValue(silo, out var e) && !string.IsNullOrEmpty(e.SiloName) && !names.Contains(e.SiloName))
                names.Add(e.SiloName);
        names.Sort(StringComparer.Ordinal);
        return names;
    }

    /// <summary>ListHosts.</summary>
    public async Task<ListHostsResponse> ListHostsAsync()
    {
        var hosts = await Task.WhenAll(ActiveHosts().Select(h => grains.GetGrain<IHostGrain>(h).Describe())).ConfigureAwait(false);
        var response = new ListHostsResponse();
        response.Hosts.AddRange(hosts);
        return response;
    }

    /// <summary>DescribeHost.</summary>
    public Task<Host> DescribeHostAsync(DescribeHostRequest request)
    {
        RequireHost(request.Name, "name");
        return grains.GetGrain<IHostGrain>(request.Name).Describe();
    }

    /// <summary>CreateVm.</summary>
    public async Task<Vm> CreateVmAsync(CreateVmRequest request)
    {
        ValidateName(request.Name, "name");
        if (request.MemoryBytes % 4096 != 0 || request.MemoryBytes < MinVmBytes || request.MemoryBytes > MaxVmBytes)
            throw FabricException.Invalid($"memory_bytes must be a multiple of 4096 within 16 MiB..1 TiB, was {request.MemoryBytes}.");
        WorkloadFactory.Validate(request.Workload, request.MemoryBytes);
        RequireHost(request.Host, "host");
        await Registry.Claim(request.Name, request.Host).ConfigureAwait(false);
        try
        {
            return await grains.GetGrain<IVmGrain>(request.Name).Create(request).ConfigureAwait(false);
        }
        catch
        {
            await Registry.Release(request.Name).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>ListVms.</summary>
    public async Task<ListVmsResponse> ListVmsAsync(ListVmsRequest request)
    {
        if (request.Host.Length > 0) RequireHost(request.Host, "host");
        var entries = await Registry.ListVms().ConfigureAwait(false);
        var chosen = entries.Where(e => request.Host.Length == 0 || e.Host == request.Host).ToList();
        var vms = await Task.WhenAll(chosen.Select(e => grains.GetGrain<IVmGrain>(e.Vm).Describe())).ConfigureAwait(false);
        var response = new ListVmsResponse();
        response.Vms.AddRange(vms.Where(v => request.Host.Length == 0 || v.Host == request.Host));
        return response;
    }

    /// <summary>DescribeVm.</summary>
    public Task<Vm> DescribeVmAsync(DescribeVmRequest request)
    {
        if (request.Name.Length == 0) throw FabricException.Invalid("name is required.");
        return grains.GetGrain<IVmGrain>(request.Name).Describe();
    }

    /// <summary>DeleteVm.</summary>
    public async Task<DeleteVmResponse> DeleteVmAsync(DeleteVmRequest request)
    {
        if (request.Name.Length == 0) throw FabricException.Invalid("name is required.");
        return new DeleteVmResponse { FreedBytes = await grains.GetGrain<IVmGrain>(request.Name).Delete().ConfigureAwait(false) };
    }

    /// <summary>StartMigration: validates, plans what each receiving host holds, marks the VM, prepares the receiving hosts, starts the source's coordinator.</summary>
    public async Task<Migration> StartMigrationAsync(StartMigrationRequest request, CancellationToken cancellationToken)
    {
        request = request.Clone();
        if (request.Vm.Length == 0) throw FabricException.Invalid("vm is required.");
        if (request.Destination.Length == 0) throw FabricException.Invalid("destination is required.");
        StrategyCatalog.ValidateAndFill(request);
        var active = ActiveHosts();
        if (!active.Contains(request.Destination))
            throw FabricException.NotFound($"destination host '{request.Destination}' is not an active host of the cluster.");
        foreach (var sub in request.SubHosts)
            if (!active.Contains(sub))
                throw FabricException.NotFound($"sub_hosts names '{sub}', which is not an active host of the cluster.");
        if (request.MigrationId.Length == 0) request.MigrationId = $"mig-{Guid.NewGuid():N}"[..16];
        else ValidateName(request.MigrationId, "migration_id");
        string id = request.MigrationId;

        var vmGrain = grains.GetGrain<IVmGrain>(request.Vm);
        var current = await vmGrain.Describe().ConfigureAwait(false);
        var plan = await PlanAsync(request, current).ConfigureAwait(false);
        var session = grains.GetGrain<IMigrationSessionGrain>(id);
        var vm = await vmGrain.BeginMigration(id, request.Destination).ConfigureAwait(false);
        var migration = new Migration
        {
            Id = id, Request = request, Source = vm.Host, Phase = MigrationPhase.Planning,
            StartedAt = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow),
        };
        try
        {
            await session.Plan(migration).ConfigureAwait(false);
        }
        catch
        {
            await vmGrain.EndMigration(id, "").ConfigureAwait(false);
            throw;
        }
        await Registry.AddMigration(id, request.Vm).ConfigureAwait(false);
        var destination = grains.GetGrain<IHostGrain>(request.Destination);
        bool prepared = false;
        var held = new List<string>();
        try
        {
            // The further hosts first: the destination of a split or a gather reaches them once it resumes.
            foreach (var part in plan.Others)
            {
                await grains.GetGrain<IHostGrain>(part.Host).PrepareHold(id, request.Vm, vm.MemoryBytes, part).ConfigureAwait(false);
                held.Add(part.Host);
            }
            var preallocation = await destination.PrepareIncoming(request, vm.MemoryBytes, vm.Workload, plan).ConfigureAwait(false);
            prepared = true;
            plan = plan with { DestinationPreallocation = preallocation };
            await grains.GetGrain<IHostGrain>(vm.Host).StartOutgoing(request, plan).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            var rpc = FabricException.ToRpc(e);
            var failed = migration.Clone();
            failed.Phase = MigrationPhase.Failed;
            failed.Error = $"{rpc.StatusCode}: {rpc.Status.Detail}";
            failed.EndedAt = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow);
            await session.Finish(failed).ConfigureAwait(false);
            await vmGrain.EndMigration(id, "").ConfigureAwait(false);
            if (prepared) await AbortAtDestinationAsync(plan.Destination.Endpoint, id, rpc.Status.Detail, cancellationToken).ConfigureAwait(false);
            foreach (var host in held)
            {
                try { await grains.GetGrain<IHostGrain>(host).ReleaseHold(request.Vm, id).ConfigureAwait(false); }
                catch (Exception) { /* Best effort: a part whose streams never come is discarded when its host stops. */ }
            }
            throw;
        }
        return await session.Describe().ConfigureAwait(false);
    }

    /// <summary>Asks every receiving host for its room and plans what each holds (INVALID_ARGUMENT / FAILED_PRECONDITION naming the host).</summary>
    private async Task<MigrationPlan> PlanAsync(StartMigrationRequest request, Vm vm)
    {
        if (vm.Host == request.Destination)
            throw FabricException.Invalid($"VM '{vm.Name}' already runs on host '{vm.Host}'; the destination must be another host.");
        var names = request.SubHosts.Prepend(request.Destination).ToArray();
        var rooms = await Task.WhenAll(names.Select(h => grains.GetGrain<IHostGrain>(h).Room())).ConfigureAwait(false);
        var facts = new VmFacts(vm.Name, vm.Host, (long)vm.MemoryBytes, 
            vm.ShareBytes > 0 && vm.ShareBytes < vm.MemoryBytes && vm.RemoteShares.Count == 0,
            [.. vm.RemoteShares.Select(r => r.Host)]);
        // The destination admits the VM anew: its VMMB terms travel in the plan, or it would arrive with none and weight 1.
        return MigrationPlanner.Plan(request, facts, rooms.ToDictionary(r => r.Host, StringComparer.Ordinal)) with { ReservationBytes = (long)vm.ReservationBytes, Weight = vm.Weight };
    }

    /// <summary>WatchMigration: events every interval until the migration ends; the last carries the final migration.</summary>
    public async Task WatchMigrationAsync(WatchMigrationRequest request, Func<MigrationEvent, Task> write, CancellationToken cancellationToken)
    {
        if (request.MigrationId.Length == 0) throw FabricException.Invalid("migration_id is required.");
        var interval = TimeSpan.FromMilliseconds(request.IntervalMs == 0 ? 200 : Math.Clamp(request.IntervalMs, 10, 60_000));
        var session = grains.GetGrain<IMigrationSessionGrain>(request.MigrationId);
        bool any = false;
        while (true)
        {
            MigrationEvent e;
            try
            {
                e = await session.Progress().ConfigureAwait(false);
            }
            catch (Exception ex) when (any && GrainCallRetry.IsTransient(ex))
            {
                // The session's silo died mid-watch: it reactivates elsewhere (from its persisted state) once
                // membership declares that silo dead, so a watcher keeps its stream instead of an error.
                await Task.Delay(interval * 5, cancellationToken).ConfigureAwait(false);
                continue;
            }
            any = true;
            await write(e).ConfigureAwait(false);
            if (e.Final is not null) return;
            await Task.Delay(interval, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>CancelMigration.</summary>
    public Task<Migration> CancelMigrationAsync(CancelMigrationRequest request)
    {
        if (request.MigrationId.Length == 0) throw FabricException.Invalid("migration_id is required.");
        return grains.GetGrain<IMigrationSessionGrain>(request.MigrationId).Cancel();
    }

    /// <summary>ListMigrations.</summary>
    public async Task<ListMigrationsResponse> ListMigrationsAsync(ListMigrationsRequest request)
    {
        var ids = await Registry.ListMigrations(request.Vm).ConfigureAwait(false);
        var all = await Task.WhenAll(ids.Select(id => grains.GetGrain<IMigrationSessionGrain>(id).Describe())).ConfigureAwait(false);
        var response = new ListMigrationsResponse();
        response.Migrations.AddRange(all);
        return response;
    }

    /// <summary>DescribeMigration.</summary>
    public Task<Migration> DescribeMigrationAsync(DescribeMigrationRequest request)
    {
        if (request.MigrationId.Length == 0) throw FabricException.Invalid("migration_id is required.");
        return grains.GetGrain<IMigrationSessionGrain>(request.MigrationId).Describe();
    }

    /// <summary>RebalanceMemory: the host's own grain computes the targets from its VMs' demand monitors and, unless a dry run, applies them.</summary>
    public Task<RebalanceMemoryResponse> RebalanceMemoryAsync(RebalanceMemoryRequest request)
    {
        RequireHost(request.Host, "host");
        return grains.GetGrain<IHostGrain>(request.Host).RebalanceMemory(request.DryRun);
    }

    private void RequireHost(string name, string field)
    {
        if (name.Length == 0) throw FabricException.Invalid($"{field} is required (a host name).");
        if (!ActiveHosts().Contains(name)) throw FabricException.NotFound($"host '{name}' is not an active host of the cluster.");
    }

    private static void ValidateName(string name, string field)
    {
        if (name.Length == 0) throw FabricException.Invalid($"{field} is required.");
        if (name.Length > 63) throw FabricException.Invalid($"{field} '{name}' is longer than 63 characters.");
        foreach (char c in name)
            if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
                throw FabricException.Invalid($"{field} '{name}' may hold only letters, digits, '-', '_' and '.'.");
    }

    private static async Task AbortAtDestinationAsync(string endpoint, string id, string reason, CancellationToken cancellationToken)
    {
        try
        {
            using var channel = new RpcChannel(new Uri(endpoint), new RpcChannelOptions());
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(5));
            await channel.AsyncUnaryCall(PagesContract.AbortMigration, new AbortMigrationRequest { MigrationId = id, Reason = reason },
                new CallOptions(CancellationToken: timeout.Token)).ResponseAsync.ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Best effort: the destination discards an unfinished incoming migration when it is aborted or its streams never come.
        }
    }
}
