namespace MigrationFabric.Host.Agent;

using MigrationFabric.Grains.Membership;
using MigrationFabric.Grains.Storage;

/// <summary>Options of an in-process cluster of host agents on loopback (mf demo, mf up, tests).</summary>
public sealed class EmbeddedClusterOptions
{
    /// <summary>Number of host agents. Default 3.</summary>
    public int Hosts { get; set; } = 3;

    /// <summary>Memory budget of each host, bytes. Default 1 GiB.</summary>
    public long MemoryBudgetBytes { get; set; } = 1L << 30;

    /// <summary>Budgets of the hosts in order (overrides <see cref="MemoryBudgetBytes"/> for the first ones; e.g. a small host for VMemDirect). Default null: every host gets MemoryBudgetBytes.</summary>
    public IReadOnlyList<long>? HostBudgetsBytes { get; set; }

    /// <summary>API port of the first host; the others take the next ports; 0 picks free ports. Default 0.</summary>
    public int FirstApiPort { get; set; }

    /// <summary>Host names are this prefix plus a letter ("host-a", "host-b" ...). Default "host-".</summary>
    public string NamePrefix { get; set; } = "host-";

    /// <summary>Membership (liveness) options of every agent; null takes MembershipOptions' defaults. Default null.</summary>
    public MembershipOptions? Membership { get; set; }

    /// <summary>Every agent's HostAgentOptions.DataChannel. Default Tcp, as HostAgentOptions.</summary>
    public MigrationFabric.Migration.DataPlane.DataChannel DataChannel { get; set; } = MigrationFabric.Migration.DataPlane.DataChannel.Tcp;

    /// <summary>Every agent's HostAgentOptions.PreallocateIncomingMemory. Default true, as HostAgentOptions.</summary>
    public bool PreallocateIncomingMemory { get; set; } = true;

    /// <summary>Throws naming the first invalid option.</summary>
    public void Validate()
    {
        if (Hosts is < 1 or > 26) throw new ArgumentException($"EmbeddedClusterOptions.Hosts must be within 1..26, was {Hosts}.");
        if (FirstApiPort is < 0 || FirstApiPort + Hosts > 65536) throw new ArgumentException($"EmbeddedClusterOptions.FirstApiPort {FirstApiPort} leaves no room for {Hosts} ports.");
        if (MemoryBudgetBytes <= 0 || MemoryBudgetBytes % 4096 != 0)
            throw new ArgumentException($"EmbeddedClusterOptions.MemoryBudgetBytes must be a positive multiple of 4096, was {MemoryBudgetBytes}.");
        if (HostBudgetsBytes is { } budgets)
        {
            if (budgets.Count > Hosts) throw new ArgumentException($"EmbeddedClusterOptions.HostBudgetsBytes has {budgets.Count} budgets for {Hosts} hosts.");
            for (int i = 0; i < budgets.Count; i++)
                if (budgets[i] <= 0 || budgets[i] % 4096 != 0)
                    throw new ArgumentException($"EmbeddedClusterOptions.HostBudgetsBytes[{i}] must be a positive multiple of 4096, was {budgets[i]}.");
        }
    }

    /// <summary>The budget of host <paramref name="index"/>.</summary>
    public long BudgetOf(int index) => HostBudgetsBytes is { } b && index < b.Count ? b[index] : MemoryBudgetBytes;
}

/// <summary>N host agents in this process, each a real gRPC endpoint and silo on loopback, sharing an in-memory membership table and grain storage.</summary>
public sealed class EmbeddedCluster : IAsyncDisposable
{
    private readonly List<HostAgent> _agents = [];

    private EmbeddedCluster(EmbeddedClusterOptions options) => Options = options;

    /// <summary>The options it was started with.</summary>
    public EmbeddedClusterOptions Options { get; }

    /// <summary>The agents, in name order.</summary>
    public IReadOnlyList<HostAgent> Agents => _agents;

    /// <summary>The membership table they share.</summary>
    public InMemoryMembershipTable Table { get; } = new();

    /// <summary>The grain storage they share.</summary>
    public InMemoryGrainStorage Storage { get; } = new();

    /// <summary>The first agent's endpoint (any agent answers for the whole cluster).</summary>
    public Uri Endpoint => _agents[0].Endpoint;

    /// <summary>Liveness quick enough for tests: a killed host (its probes refused at once) is declared dead in about 6-8 s.</summary>
    /// <remarks>
    /// Tolerant of a loaded 2-core machine, where every agent shares one starved thread pool: a live host is declared dead only
    /// after 3 consecutive probes of 2 s each failed from two probers, or its heartbeat is 10 s old. With 500 ms probes,
    /// 2 misses and 1 vote, a one-second stall (JIT at start, a VM's first allocation) declared live silos dead at load 25-48.
    /// </remarks>
    public static MembershipOptions FastMembership() => new()
    {
        ProbeTimeout = TimeSpan.FromSeconds(2),
        NumMissedProbesLimit = 3,
        NumVotesForDeathDeclaration = 2,
        IAmAlivePublishPeriod = TimeSpan.FromSeconds(2),
        NumMissedTableIAmAliveLimit = 5,
        TableVersionPollPeriod = TimeSpan.FromMilliseconds(200),
        TableRefreshTimeout = TimeSpan.FromSeconds(5),
    };

    /// <summary>Starts the agents and waits until every one sees all of them active.</summary>
    public static async Task<EmbeddedCluster> StartAsync(EmbeddedClusterOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new EmbeddedClusterOptions();
        options.Validate();
        var cluster = new EmbeddedCluster(options);
        try
        {
            for (int i = 0; i < options.Hosts; i++)
            {
                var agent = new HostAgent(new HostAgentOptions
                {
                    HostName = $"{options.NamePrefix}{(char)('a' + i)}",
                    MemoryBudgetBytes = options.BudgetOf(i),
                    ApiPort = options.FirstApiPort == 0 ? 0 : options.FirstApiPort + i,
                    DataChannel = options.DataChannel,
                    PreallocateIncomingMemory = options.PreallocateIncomingMemory,
                }, cluster.Table, cluster.Storage, options.Membership);
                await agent.StartAsync(cancellationToken).ConfigureAwait(false);
                cluster._agents.Add(agent);
            }
            foreach (var agent in cluster._agents)
                await agent.Silo.WaitForActiveSilosAsync(options.Hosts, cancellationToken).ConfigureAwait(false);
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The agent of host <paramref name="name"/>.</summary>
    public HostAgent Agent(string name) => _agents.FirstOrDefault(a => a.HostName == name) ?? throw new ArgumentException($"no host named '{name}' in this cluster.");

    /// <summary>Stops every agent (in reverse order).</summary>
    public async ValueTask DisposeAsync()
    {
        for (int i = _agents.Count - 1; i >= 0; i--)
        {
            try
            {
                await _agents[i].StopAsync(CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception)
            {
                // Keep stopping the others; a failed goodbye is what a crash looks like anyway.
            }
        }
    }
}
