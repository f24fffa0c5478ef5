namespace MigrationFabric.Grains.Membership;

/// <summary>One row of the membership table: a silo identity, its status, heartbeat and suspicion votes.</summary>
public sealed record MembershipEntry
{
    /// <summary>Creates a row.</summary>
    public MembershipEntry(SiloAddress silo, SiloStatus status, DateTimeOffset startTime, DateTimeOffset iAmAliveTime,
        IReadOnlyList<SuspicionVote>? suspicions = null, string? siloName = null)
    {
        ArgumentNullException.ThrowIfNull(silo);
        if (status == SiloStatus.None || !Enum.IsDefined(status))
            throw new ArgumentOutOfRangeException(nameof(status), status, "A membership row needs a real silo status.");
        Silo = silo;
        Status = status;
        StartTime = startTime;
        IAmAliveTime = iAmAliveTime;
        Suspicions = suspicions ?? [];
        SiloName = siloName ?? silo.Endpoint;
    }

    /// <summary>The silo's identity (the row key).</summary>
    public SiloAddress Silo { get; init; }

    /// <summary>Where the silo is in its lifecycle.</summary>
    public SiloStatus Status { get; init; }

    /// <summary>When the silo started (its clock).</summary>
    public DateTimeOffset StartTime { get; init; }

    /// <summary>Last heartbeat the silo wrote (its clock); stale heartbeats mark a silo as suspect.</summary>
    public DateTimeOffset IAmAliveTime { get; init; }

    /// <summary>Votes from other silos that this one is dead (each voter at most once).</summary>
    public IReadOnlyList<SuspicionVote> Suspicions { get; init; }

    /// <summary>Human-readable name for logs and the CLI.</summary>
    public string SiloName { get; init; }

    /// <summary>Votes no older than <paramref name="expiration"/> at <paramref name="now"/>.</summary>
    public IEnumerable<SuspicionVote> FreshVotes(DateTimeOffset now, TimeSpan expiration)
    {
        foreach (var vote in Suspicions)
            if (now - vote.Time <= expiration)
                yield return vote;
    }
}
