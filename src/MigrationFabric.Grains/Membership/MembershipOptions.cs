namespace MigrationFabric.Grains.Membership;

/// <summary>Liveness and table options of the membership service; defaults follow Orleans' ClusterMembershipOptions.</summary>
public sealed class MembershipOptions
{
    /// <summary>How often each silo probes its ring successors, and how long one probe may take. Default 5 s.</summary>
    public TimeSpan ProbeTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How many ring successors each silo probes. Default 3.</summary>
    public int NumProbedSilos { get; set; } = 3;

    /// <summary>Consecutive missed probes after which a silo casts a suspicion vote. Default 3.</summary>
    public int NumMissedProbesLimit { get; set; } = 3;

    /// <summary>Fresh votes needed to declare a silo dead (capped at half the live silos, rounded up). Default 2.</summary>
    public int NumVotesForDeathDeclaration { get; set; } = 2;

    /// <summary>Age after which a suspicion vote no longer counts. Default 120 s.</summary>
    public TimeSpan DeathVoteExpirationTimeout { get; set; } = TimeSpan.FromSeconds(120);

    /// <summary>How often a silo writes its heartbeat (IAmAlive) to the table (Orleans: IAmAliveTablePublishTimeout). Default 30 s.</summary>
    public TimeSpan IAmAlivePublishPeriod { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Heartbeat periods a silo may miss before any other silo declares it dead from the table alone. Default 3.</summary>
    public int NumMissedTableIAmAliveLimit { get; set; } = 3;

    /// <summary>How often a silo polls the table version to notice changes. Default 1 s.</summary>
    public TimeSpan TableVersionPollPeriod { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How often a silo re-reads the whole table even without a version change. Default 60 s.</summary>
    public TimeSpan TableRefreshTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>How long joining (inserting the row) may keep losing compare-and-swap races before start fails. Default 5 min.</summary>
    public TimeSpan MaxJoinAttemptTime { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Age after which Dead rows are deleted from the table; <see cref="TimeSpan.Zero"/> keeps them. Default 7 days.</summary>
    public TimeSpan DefunctSiloExpiration { get; set; } = TimeSpan.FromDays(7);

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid option.</summary>
    public void Validate()
    {
        Positive(ProbeTimeout, nameof(ProbeTimeout));
        Positive(DeathVoteExpirationTimeout, nameof(DeathVoteExpirationTimeout));
        Positive(IAmAlivePublishPeriod, nameof(IAmAlivePublishPeriod));
        Positive(TableVersionPollPeriod, nameof(TableVersionPollPeriod));
        Positive(TableRefreshTimeout, nameof(TableRefreshTimeout));
        Positive(MaxJoinAttemptTime, nameof(MaxJoinAttemptTime));
        if (DefunctSiloExpiration < TimeSpan.Zero)
            throw new ArgumentException($"MembershipOptions.{nameof(DefunctSiloExpiration)} must not be negative (got {DefunctSiloExpiration}).");
        AtLeastOne(NumProbedSilos, nameof(NumProbedSilos));
        AtLeastOne(NumMissedProbesLimit, nameof(NumMissedProbesLimit));
        AtLeastOne(NumVotesForDeathDeclaration, nameof(NumVotesForDeathDeclaration));
        AtLeastOne(NumMissedTableIAmAliveLimit, nameof(NumMissedTableIAmAliveLimit));
    }

    private static void Positive(TimeSpan value, string name)
    {
        if (value <= TimeSpan.Zero)
            throw new ArgumentException($"MembershipOptions.{name} must be positive (got {value}).");
    }

    private static void AtLeastOne(int value, string name)
    {
        if (value < 1)
            throw new ArgumentException($"MembershipOptions.{name} must be at least 1 (got {value}).");
    }
}
