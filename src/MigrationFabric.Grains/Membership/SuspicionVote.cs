namespace MigrationFabric.Grains.Membership;

/// <summary>One silo's vote that another silo is dead, stamped with the voter's clock; votes expire.</summary>
public sealed record SuspicionVote(SiloAddress Voter, DateTimeOffset Time);
