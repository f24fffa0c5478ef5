namespace MigrationFabric.Host.Grains;

using MigrationFabric.Grains;
using MigrationFabric.Grains.Storage;
using MigrationFabric.Host.Errors;
using MigrationFabric.Rpc;

/// <summary>The cluster's name registry: VM names to hosts, and migration ids.</summary>
public sealed class RegistryGrain(IPersistentState<RegistryState> state) : Grain, IRegistryGrain
{
    /// <inheritdoc />
    public override Task OnActivateAsync(CancellationToken cancellationToken) => state.ReadStateAsync(cancellationToken);

    /// <inheritdoc />
    public async Task Claim(string vm, string host)
    {
        if (state.State.Vms.TryGetValue(vm, out var existing))
            throw new FabricException(StatusCode.AlreadyExists, $"VM '{vm}' already exists (on host '{existing}').");
        state.State.Vms[vm] = host;
        await state.WriteStateAsync();
    }

    /// <inheritdoc />
    public async Task Release(string vm)
    {
        if (state.State.Vms.Remove(vm)) await state.WriteStateAsync();
    }

    /// <inheritdoc />
    public async Task Move(string vm, string host)
    {
        state.State.Vms[vm] = host;
        await state.WriteStateAsync();
    }

    /// <inheritdoc />
    public Task<string> HostOf(string vm) => Task.FromResult(state.State.Vms.GetValueOrDefault(vm) ?? "");

    /// <inheritdoc />
    public Task<RegistryEntry[]> ListVms()
    {
        var list = new List<RegistryEntry>(state.State.Vms.Count);
        foreach (var (vm, host) in state.State.Vms) list.Add(new RegistryEntry(vm, host));
        list.Sort((a, b) => string.CompareOrdinal(a.Vm, b.Vm));
        return Task.FromResult(list.ToArray());
    }

    /// <inheritdoc />
    public async Task AddMigration(string migrationId, string vm)
    {
        state.State.Migrations.Add(new RegistryEntry(migrationId, vm));
        await state.WriteStateAsync();
    }

    /// <inheritdoc />
    public Task<string[]> ListMigrations(string vm)
    {
        var ids = new List<string>();
        for (int i = state.State.Migrations.Count - 1; i >= 0; i--)
        {
            var (id, v) = state.State.Migrations[i];
            if (vm.Length == 0 || v == vm) ids.Add(id);
        }
        return Task.FromResult(ids.ToArray());
    }
}
