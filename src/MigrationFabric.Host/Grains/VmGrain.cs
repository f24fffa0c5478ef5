namespace MigrationFabric.Host.Grains;

using Google.Protobuf;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Grains;
using MigrationFabric.Grains.Placement;
using MigrationFabric.Grains.Storage;
using MigrationFabric.Host.Errors;

/// <summary>An emulated VM's record; activated on the silo of the host running it (<see cref="VmPlacement"/>), moved after a migration.</summary>
[PlacementDirector(VmPlacement.Name)]
public sealed class VmGrain(IPersistentState<VmRecord> state) : Grain, IVmGrain
{
    private VmRecord Record => state.State;

    /// <inheritdoc />
    public override Task OnActivateAsync(CancellationToken cancellationToken) => state.ReadStateAsync(cancellationToken);

    /// <inheritdoc />
    public async Task<Vm> Create(CreateVmRequest request)
    {
        if (Record.Exists) throw new FabricException(Rpc.StatusCode.AlreadyExists, $"VM '{request.Name}' already exists (on host '{Record.Host}').");
        var vm = await GrainFactory.GetGrain<IHostGrain>(request.Host).StartVm(request);
        state.State = new VmRecord
        {
            Exists = true, Host = request.Host, MemoryBytes = request.MemoryBytes, Workload = request.Workload.ToByteArray(),
            ReservationBytes = vm.ReservationBytes, Weight = vm.Weight,
        };
        await state.WriteStateAsync();
        return vm;
    }

    /// <inheritdoc />
    public async Task<Vm> Describe()
    {
        Exists();
        Vm vm;
        bool answered = true;
        try
        {
            vm = await GrainFactory.GetGrain<IHostGrain>(Record.Host).DescribeVm(GetPrimaryKeyString());
        }
        catch (Exception e) when (FabricException.From(e) is null)
        {
            answered = false;
            // The host is unreachable: answer from the record rather than fail a read.
            vm = new Vm
            {
                Name = GetPrimaryKeyString(), Host = Record.Host, MemoryBytes = Record.MemoryBytes, Workload = Workload.Parser.ParseFrom(Record.Workload),
                ReservationBytes = Record.ReservationBytes, Weight = Record.Weight,
            };
        }
        if (Record.MigrationId.Length > 0)
        {
            vm.State = VmState.Migrating;
            vm.MigrationId = Record.MigrationId;
        }
        if (vm.RemoteShares.Count == 0 && Record.RemoteHosts.Count > 0 && Record.MemoryMap.Length > 0)
        {
            // The main host did not answer with its live map: report the persisted one.
            var map = MigrationFabric.Migration.MultiHost.MemoryMap.Deserialize(Record.MemoryMap);
            for (int k = 0; k < Record.RemoteHosts.Count && k < map.SubHosts.Count; k++)
            {
                vm.RemoteShares.Add(new MemoryShare { Host = Record.RemoteHosts[k], Bytes = (ulong)(map.PagesOn(k + 1) * 4096) });
                vm.RemoteBytes += (ulong)(map.PagesOn(k + 1) * 4096);
            }
        }
        // The recorded loss is the durable one; without it, what the main host sees itself (its report may not have landed yet).
        if (Record.MemoryError.Length > 0)
        {
            vm.MemoryError = Record.MemoryError;
            vm.LostBytes = (ulong)Record.LostPages * 4096;
        }
        // The host says whether its vCPUs run; the record speaks only when the host did not answer (its agent is gone).
        if (!answered && Record.VcpuError.Length > 0 && Record.VcpuErrorHost == Record.Host)
        {
            vm.VcpuError = Record.VcpuError;
            if (Record.MigrationId.Length == 0) vm.State = VmState.Faulted;
        }
        return vm;
    }

    /// <inheritdoc />
    public async Task<ulong> Delete()
    {
        Exists();
        if (Record.MigrationId.Length > 0)
            throw FabricException.Precondition($"VM '{GetPrimaryKeyString()}' is migrating (migration {Record.MigrationId}); cancel it or wait for it to end before deleting.");
        ulong freed = await GrainFactory.GetGrain<IHostGrain>(Record.Host).StopVm(GetPrimaryKeyString());
        // The sub-hosts of a split VM hold the rest of its memory: free it there too (a dead one has nothing to free).
        foreach (var host in Record.RemoteHosts)
        {
            try { await GrainFactory.GetGrain<IHostGrain>(host).ReleaseHold(GetPrimaryKeyString(), ""); }
            catch (Exception e) when (FabricException.From(e) is null) { }
        }
        await state.ClearStateAsync();
        await GrainFactory.GetGrain<IRegistryGrain>(RegistryKey.Value).Release(GetPrimaryKeyString());
        DeactivateOnIdle();
        return freed;
    }

    /// <inheritdoc />
    public async Task<Vm> Pause()
    {
        Exists();
        await GrainFactory.GetGrain<IHostGrain>(Record.Host).SetPaused(GetPrimaryKeyString(), true);
        return await Describe();
    }

    /// <inheritdoc />
    public async Task<Vm> Resume()
    {
        Exists();
        await GrainFactory.GetGrain<IHostGrain>(Record.Host).SetPaused(GetPrimaryKeyString(), false);
        return await Describe();
    }

    /// <inheritdoc />
    public async Task<Vm> BeginMigration(string migrationId, string destination)
    {
        Exists();
        string name = GetPrimaryKeyString();
        if (Record.MigrationId.Length > 0)
            throw FabricException.Precondition($"VM '{name}' is already migrating (migration {Record.MigrationId}).");
        if (Record.Host == destination)
            throw FabricException.Invalid($"VM '{name}' already runs on host '{destination}'; the destination must be another host.");
        Record.MigrationId = migrationId;
        await state.WriteStateAsync();
        return await Describe();
    }

    /// <inheritdoc />
    public Task EndMigration(string migrationId, string newHost) => EndAsync(migrationId, newHost, null);

    private async Task EndAsync(string migrationId, string newHost, string[]? remoteHosts)
    {
        if (!Record.Exists || Record.MigrationId != migrationId) return;
        Record.MigrationId = "";
        if (newHost.Length > 0 && newHost != Record.Host)
        {
            // A move leaves the VM whole at its new host unless it was split; a split VM's old map and loss stay behind with its old main.
            Record.RemoteHosts = [.. remoteHosts ?? []];
            Record.SplitMigrationId = remoteHosts is null ? "" : migrationId;
            if (remoteHosts is null) Record.MemoryMap = [];
            // A loss the new main reported before this ending landed (a sub-host died right after switch-over) is this split's own: kept.
            if (remoteHosts is null || Record.MemoryErrorMigrationId != migrationId)
            {
                Record.MemoryError = "";
                Record.LostPages = 0;
                Record.MemoryErrorMigrationId = "";
            }
            Record.Host = newHost;
            await GrainFactory.GetGrain<IRegistryGrain>(RegistryKey.Value).Move(GetPrimaryKeyString(), newHost);
            // The next call activates this grain on the new host's silo.
            DeactivateOnIdle();
        }
        await state.WriteStateAsync();
    }

    /// <inheritdoc />
    public async Task EndSplitMigration(string migrationId, string newHost, string[] remoteHosts)
    {
        if (!Record.Exists || Record.MigrationId != migrationId) return;
        if (newHost.Length == 0 || newHost == Record.Host)
        {
            await EndAsync(migrationId, newHost, null);
            return;
        }
        await EndAsync(migrationId, newHost, remoteHosts);
    }

    /// <inheritdoc />
    public async Task SaveMemoryMap(string migrationId, byte[] map)
    {
        if (!Record.Exists) return;
        // From the running split, or from the main of the split the VM is now: a late write from an old main (the VM moved since) must not bring its map back.
        bool current = migrationId == Record.MigrationId ||
            (Record.RemoteHosts.Count > 0 && (Record.SplitMigrationId.Length == 0 || Record.SplitMigrationId == migrationId));
        if (!current) return;
        // A stale write (an older version arriving late) never replaces a newer map.
        if (Record.MemoryMap.Length > 0 && map.Length > 0)
        {
            try
            {
                if (MigrationFabric.Migration.MultiHost.MemoryMap.Deserialize(map).Version < MigrationFabric.Migration.MultiHost.MemoryMap.Deserialize(Record.MemoryMap).Version) return;
            }
            catch (InvalidDataException e)
            {
                throw FabricException.Invalid($"VM '{GetPrimaryKeyString()}': the memory map is not valid: {e.Message}");
            }
        }
        Record.MemoryMap = map;
        await state.WriteStateAsync();
    }

    /// <inheritdoc />
    public async Task ReportMemoryLost(string migrationId, string host, long pages, string message)
    {
        if (!Record.Exists) return;
        // From the split still ending, or from the main of the split the VM is now; a late report from an old main (the VM moved since) is not about it.
        bool current = migrationId == Record.MigrationId ||
            (Record.RemoteHosts.Count > 0 && (Record.SplitMigrationId.Length == 0 || Record.SplitMigrationId == migrationId));
        if (!current) return;
        Record.MemoryError = LossMessage(host, pages, message);
        Record.MemoryErrorMigrationId = migrationId;
        Record.LostPages += pages;
        await state.WriteStateAsync();
    }

    /// <inheritdoc />
    public async Task ReportVcpuFault(string host, string error)
    {
        if (!Record.Exists) return;
        Record.VcpuError = error;
        Record.VcpuErrorHost = host;
        await state.WriteStateAsync();
    }

    /// <summary>How a lost sub-host is said on the VM (by its grain, and by its main host before the report lands).</summary>
    internal static string LossMessage(string host, long pages, string message) =>
        $"sub-host '{host}' is lost: {pages} pages of the VM held only there are gone ({message}).";

    /// <inheritdoc />
    public Task<byte[]> MemoryMap() => Task.FromResult(Record.MemoryMap);

    private void Exists()
    {
        if (!Record.Exists)
        {
            DeactivateOnIdle();
            throw FabricException.NotFound($"VM '{GetPrimaryKeyString()}' does not exist.");
        }
    }
}

/// <summary>Places a VmGrain on the silo of the host its registry entry names (any silo for an unknown VM).</summary>
public static class VmPlacement
{
    /// <summary>The director's name on the silo builder.</summary>
    public const string Name = "vm";

    /// <summary>The director.</summary>
    public static IPlacementDirector Director { get; } = new DelegatePlacementDirector(async context =>
    {
        string host = await context.GrainFactory.GetGrain<IRegistryGrain>(RegistryKey.Value).HostOf(context.GrainId.Key).ConfigureAwait(false);
        if (host.Length > 0)
            foreach (var silo in context.ActiveSilos)
                if (context.View.Entries.TryGetValue(silo, out var e) && e.SiloName == host)
                    return silo;
        return await new HashBasedPlacementDirector().PlaceAsync(context).ConfigureAwait(false);
    });
}
