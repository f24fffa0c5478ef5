using MigrationFabric.Grains.Membership;
using MigrationFabric.Grains.Placement;
using MigrationFabric.Grains.Storage;

namespace MigrationFabric.Grains.Bench;

/// <summary>The grain every scenario calls.</summary>
public interface IBenchGrain : IGrainWithStringKey
{
    /// <summary>A small round trip (an int in, an int out).</summary>
    Task<int> Ping(int value);

    /// <summary>Adds to a stored counter.</summary>
    Task<int> AddDurable(int delta);

    /// <summary>The silo hosting this activation.</summary>
    Task<string> WhereAmI();
}

/// <summary>Stored state of <see cref="BenchGrain"/>.</summary>
public sealed class BenchState
{
    public int Value { get; set; }
}

[PlacementDirector(SiloPrefixPlacement.Name)]
public sealed class BenchGrain(IPersistentState<BenchState> state) : Grain, IBenchGrain
{
    public override Task OnActivateAsync(CancellationToken cancellationToken) => state.ReadStateAsync(cancellationToken);

    public Task<int> Ping(int value) => Task.FromResult(value + 1);

    public async Task<int> AddDurable(int delta)
    {
        state.State.Value += delta;
        await state.WriteStateAsync();
        return state.State.Value;
    }

    public Task<string> WhereAmI() => Task.FromResult(GrainContext.Silo.ToString());
}

/// <summary>Keys "silo-name/rest" go to the active silo of that name, else to the ring owner.</summary>
public sealed class SiloPrefixPlacement : IPlacementDirector
{
    public const string Name = "silo-prefix";

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
