using MigrationFabric.Grains.Membership;
using MigrationFabric.Grains.Placement;
using MigrationFabric.Grains.Storage;

namespace MigrationFabric.Grains.TestSilo;

/// <summary>A counter kept in grain storage (survives the death of its silo).</summary>
public interface IDurableCounterGrain : IGrainWithStringKey
{
    Task<int> Add(int delta);
    Task<int> Get();
    Task<string> WhereAmI();
}

/// <summary>The stored state of <see cref="DurableCounterGrain"/>.</summary>
public sealed class DurableCounterState
{
    public int Value { get; set; }
}

/// <summary>Reads its state on activation, writes it on every change.</summary>
[PlacementDirector(NamedSiloFirstPlacement.Name)]
public sealed class DurableCounterGrain(IPersistentState<DurableCounterState> state) : Grain, IDurableCounterGrain
{
    public override Task OnActivateAsync(CancellationToken cancellationToken) => state.ReadStateAsync(cancellationToken);

    public async Task<int> Add(int delta)
    {
        state.State.Value += delta;
        await state.WriteStateAsync();
        return state.State.Value;
    }

    public Task<int> Get() => Task.FromResult(state.State.Value);

    public Task<string> WhereAmI() => Task.FromResult(GrainContext.Silo.ToString());
}

/// <summary>Keys "silo-name/rest" go to the active silo of that name, else to the ring owner (as a VmGrain follows its host, then fails over).</summary>
public sealed class NamedSiloFirstPlacement : IPlacementDirector
{
    public const string Name = "named-silo-first";

    public ValueTask<SiloAddress> PlaceAsync(PlacementContext context)
    {
        int slash = context.GrainId.Key.IndexOf('/', StringComparison.Ordinal);
        if (slash > 0)
        {
            var wanted = context.GrainId.Key[..slash];
            foreach (var silo in context.ActiveSilos)
                if (context.View.Entries.TryGetValue(silo, out var e) && e.SiloName == wanted)
                    return ValueTask.FromResult(silo);
        }
        return new HashBasedPlacementDirector().PlaceAsync(context);
    }
}
