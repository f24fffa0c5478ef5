namespace MigrationFabric.Grains.Membership;

/// <summary>Decides one silo's vote against another: which votes still count and whether they now suffice for death.</summary>
public sealed class SuspicionPolicy
{
    private readonly MembershipOptions _options;

    /// <summary>Creates the policy over validated <paramref name="options"/>.</summary>
    public SuspicionPolicy(MembershipOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
    }

    /// <summary>Votes needed to declare a silo dead with <paramref name="activeSilos"/> Active silos: min(NumVotesForDeathDeclaration, ceil(active / 2)), at least 1.</summary>
    /// <remarks>The cap lets a small cluster (two silos: one vote) still remove a dead member.</remarks>
    public int RequiredVotes(int activeSilos) =>
        Math.Max(1, Math.Min(_options.NumVotesForDeathDeclaration, (activeSilos + 1) / 2));

    /// <summary>The votes <paramref name="target"/>'s row should hold after <paramref name="voter"/> votes at <paramref name="now"/>.</summary>
    /// <returns>Expired votes dropped, the voter's older vote replaced, and whether the total reaches <see cref="RequiredVotes"/>.</returns>
    public SuspicionDecision Vote(MembershipEntry target, SiloAddress voter, DateTimeOffset now, int activeSilos)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(voter);
        if (target.Silo.Equals(voter))
            throw new ArgumentException($"Silo {voter} cannot vote against itself.", nameof(voter));
        var votes = new List<SuspicionVote>();
        foreach (var vote in target.FreshVotes(now, _options.DeathVoteExpirationTimeout))
            if (!vote.Voter.Equals(voter))
                votes.Add(vote);
        votes.Add(new SuspicionVote(voter, now));
        int required = RequiredVotes(activeSilos);
        return new SuspicionDecision(votes, votes.Count >= required, required);
    }
}

/// <summary>The outcome of one vote: the row's new votes and whether the target is now declared dead.</summary>
public readonly record struct SuspicionDecision(IReadOnlyList<SuspicionVote> Votes, bool DeclareDead, int RequiredVotes);
