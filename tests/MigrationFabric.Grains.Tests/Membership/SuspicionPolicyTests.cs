using MigrationFabric.Grains.Membership;
using Xunit;

namespace MigrationFabric.Grains.Tests.Membership;

/// <summary>Vote counting: expiry, one vote per voter, the required-votes cap.</summary>
public sealed class SuspicionPolicyTests
{
    private static readonly DateTimeOffset T0 = DateTimeOffset.UnixEpoch.AddDays(1);
    private static readonly SiloAddress Target = new("10.0.0.1", 1, 1);

    private static SiloAddress Voter(int n) => new("10.0.0.2", n, 1);

    private static SuspicionPolicy Policy(int votes = 2, int expirySeconds = 120) =>
        new(new MembershipOptions { NumVotesForDeathDeclaration = votes, DeathVoteExpirationTimeout = TimeSpan.FromSeconds(expirySeconds) });

    private static MembershipEntry Row(params SuspicionVote[] votes) => new(Target, SiloStatus.Active, T0, T0, votes);

    [Theory]
    [InlineData(2, 1, 1)]
    [InlineData(2, 2, 1)]
    [InlineData(2, 3, 2)]
    [InlineData(2, 10, 2)]
    [InlineData(3, 4, 2)]
    [InlineData(3, 5, 3)]
    [InlineData(1, 9, 1)]
    [InlineData(2, 0, 1)]
    public void Required_votes_are_capped_at_half_the_active_silos(int configured, int active, int required) =>
        Assert.Equal(required, Policy(configured).RequiredVotes(active));

    [Fact]
    public void A_first_vote_in_a_big_cluster_only_suspects()
    {
        var d = Policy().Vote(Row(), Voter(1), T0, activeSilos: 5);
        Assert.False(d.DeclareDead);
        Assert.Equal([new SuspicionVote(Voter(1), T0)], d.Votes);
        Assert.Equal(2, d.RequiredVotes);
    }

    [Fact]
    public void A_second_voter_declares()
    {
        var d = Policy().Vote(Row(new SuspicionVote(Voter(1), T0)), Voter(2), T0.AddSeconds(5), activeSilos: 5);
        Assert.True(d.DeclareDead);
        Assert.Equal(2, d.Votes.Count);
    }

    [Fact]
    public void The_same_voter_twice_counts_once_with_the_newer_time()
    {
        var d = Policy().Vote(Row(new SuspicionVote(Voter(1), T0)), Voter(1), T0.AddSeconds(5), activeSilos: 5);
        Assert.False(d.DeclareDead);
        Assert.Equal([new SuspicionVote(Voter(1), T0.AddSeconds(5))], d.Votes);
    }

    [Fact]
    public void Expired_votes_are_dropped_and_do_not_count()
    {
        var d = Policy(expirySeconds: 60).Vote(Row(new SuspicionVote(Voter(1), T0)), Voter(2), T0.AddSeconds(61), activeSilos: 5);
        Assert.False(d.DeclareDead);
        Assert.Equal([Voter(2)], d.Votes.Select(v => v.Voter));
    }

    [Fact]
    public void A_silo_cannot_vote_against_itself()
    {
        var e = Assert.Throws<ArgumentException>(() => Policy().Vote(Row(), Target, T0, 3));
        Assert.Contains(Target.ToString(), e.Message);
    }

    [Fact]
    public void Invalid_options_are_rejected()
    {
        var e = Assert.Throws<ArgumentException>(() => new SuspicionPolicy(new MembershipOptions { NumVotesForDeathDeclaration = 0 }));
        Assert.Contains("NumVotesForDeathDeclaration", e.Message);
    }
}
