namespace MigrationFabric.Host.Tests;

using System.Collections.Concurrent;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using MigrationFabric.Contracts.V1;
using MigrationFabric.Grains.Membership;
using MigrationFabric.Grains.Storage;
using MigrationFabric.Host.Agent;
using MigrationFabric.Host.Api;
using MigrationFabric.Host.Grains;
using MigrationFabric.Rpc.Client;

/// <summary>A migration's session is persisted: after its coordinator is gone, the session says where it stood and how it ended.</summary>
public sealed class SessionRecoveryTests : IAsyncLifetime
{
    private readonly RecordingStorage _storage = new();
    private readonly InMemoryMembershipTable _table = new();
    private readonly List<HostAgent> _agents = [];

    public async Task InitializeAsync()
    {
        foreach (var name in new[] { "host-a", "host-b" })
        {
            var agent = new HostAgent(new HostAgentOptions { HostName = name, MemoryBudgetBytes = 256L << 20 }, _table, _storage);
            await agent.StartAsync(CancellationToken.None);
            _agents.Add(agent);
        }
        foreach (var a in _agents) await a.Silo.WaitForActiveSilosAsync(2, new CancellationTokenSource(TestCluster.Patience).Token);
    }

    public async Task DisposeAsync()
    {
        foreach (var a in _agents) await a.StopAsync(CancellationToken.None);
    }

    [Theory]
    [InlineData(MigrationPhase.PreCopy, "before switch-over: the VM stayed at its source")]
    [InlineData(MigrationPhase.PostCopy, "known loss of post-copy")]
    public async Task A_session_whose_coordinator_is_gone_reports_where_it_stood(MigrationPhase phase, string says)
    {
        // A session as a coordinator on host-b left it in the store, written the way the grain writes it.
        string planned = $"plan-{phase}";
        await _agents[0].Silo.GrainFactory.GetGrain<IMigrationSessionGrain>(planned).Plan(Running(planned, MigrationPhase.Planning));
        var (key, _) = _storage.Written.First(w => w.Key.StateName == "migration" && w.Key.GrainId.EndsWith(planned, StringComparison.Ordinal));
        string lost = $"lost-{phase}";
        var stored = new MigrationSessionState { Migration = Running(lost, phase).ToByteArray() };
        await _storage.WriteAsync(new GrainStateKey(key.StateName, key.GrainId.Replace(planned, lost, StringComparison.Ordinal)),
            new JsonGrainStateSerializer().Serialize(stored), null, CancellationToken.None);

        // The first call activates the session from that record; nothing on host-b runs it any more.
        using var channel = new RpcChannel(_agents[0].Endpoint, new RpcChannelOptions());
        var m = await channel.AsyncUnaryCall(FabricContract.DescribeMigration, new DescribeMigrationRequest { MigrationId = lost }).ResponseAsync;
        Assert.Equal(MigrationPhase.Failed, m.Phase);
        Assert.Contains($"lost during {phase}", m.Error);
        Assert.Contains(says, m.Error);
        Assert.NotNull(m.EndedAt);
        // And that ending was persisted, not just answered.
        var record = await _storage.ReadAsync(new GrainStateKey(key.StateName, key.GrainId.Replace(planned, lost, StringComparison.Ordinal)), CancellationToken.None);
        var persisted = Migration.Parser.ParseFrom(new JsonGrainStateSerializer().Deserialize<MigrationSessionState>(record.Data.Span).Migration);
        Assert.Equal(MigrationPhase.Failed, persisted.Phase);
    }

    private static Migration Running(string id, MigrationPhase phase) => new()
    {
        Id = id, Source = "host-b", Phase = phase, StartedAt = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow),
        Request = new StartMigrationRequest { Vm = "vm-x", Destination = "host-a", Strategy = Strategy.PostCopy, MigrationId = id },
    };

    /// <summary>In-memory grain storage that remembers which keys were written.</summary>
    private sealed class RecordingStorage : IGrainStorage
    {
        private readonly InMemoryGrainStorage _inner = new();

        public ConcurrentQueue<(GrainStateKey Key, byte[] Data)> Written { get; } = new();

        public Task InitializeAsync(CancellationToken cancellationToken) => _inner.InitializeAsync(cancellationToken);

        public Task<GrainStateRecord> ReadAsync(GrainStateKey key, CancellationToken cancellationToken) => _inner.ReadAsync(key, cancellationToken);

        public Task<string> WriteAsync(GrainStateKey key, ReadOnlyMemory<byte> data, string? expectedEtag, CancellationToken cancellationToken)
        {
            Written.Enqueue((key, data.ToArray()));
            return _inner.WriteAsync(key, data, expectedEtag, cancellationToken);
        }

        public Task ClearAsync(GrainStateKey key, string? expectedEtag, CancellationToken cancellationToken) => _inner.ClearAsync(key, expectedEtag, cancellationToken);
    }
}
