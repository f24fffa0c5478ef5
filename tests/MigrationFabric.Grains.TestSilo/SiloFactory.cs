using MigrationFabric.Grains.Membership;
using MigrationFabric.Grains.Messaging;
using MigrationFabric.Grains.Runtime;
using MigrationFabric.Grains.Storage;

namespace MigrationFabric.Grains.TestSilo;

/// <summary>Builds the silo that both the child process and the test process run, so they serve the same grains alike.</summary>
public static class SiloFactory
{
    /// <summary>Liveness tuned so a killed silo is declared dead in about three seconds (a 300 ms probe timeout let a busy machine declare a starting silo dead).</summary>
    public static MembershipOptions FastMembership() => new()
    {
        ProbeTimeout = TimeSpan.FromSeconds(1),
        NumMissedProbesLimit = 3,
        NumVotesForDeathDeclaration = 1,
        IAmAlivePublishPeriod = TimeSpan.FromSeconds(1),
        TableVersionPollPeriod = TimeSpan.FromMilliseconds(100),
        TableRefreshTimeout = TimeSpan.FromSeconds(2),
    };

    public static Silo Create(IMembershipTable table, IGrainStorage storage, ISiloTransport transport, string name) =>
        new SiloBuilder()
            .UseTransport(transport)
            .UseMembershipTable(table, FastMembership())
            .AddGrainStorage(SiloBuilder.DefaultStorageName, storage)
            .AddPlacementDirector(NamedSiloFirstPlacement.Name, new NamedSiloFirstPlacement())
            .AddGrain<IDurableCounterGrain, DurableCounterGrain>(ctx => new DurableCounterGrain(ctx.GetPersistentState<DurableCounterState>("counter")))
            .Configure(o => { o.SiloName = name; o.DirectoryRecoveryTimeout = TimeSpan.FromSeconds(3); })
            .Build();
}
