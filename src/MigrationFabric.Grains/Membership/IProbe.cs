namespace MigrationFabric.Grains.Membership;

/// <summary>Checks whether one silo identity answers; the membership service probes its ring successors with it.</summary>
/// <remarks>
/// Return normally when <paramref name="target"/> answered as that exact identity (same generation);
/// throw (any exception) when it did not. The service cancels <paramref name="cancellationToken"/>
/// after <see cref="MembershipOptions.ProbeTimeout"/>, which also counts as a missed probe.
/// </remarks>
public interface IProbe
{
    /// <summary>Probes <paramref name="target"/>; throws when it did not answer.</summary>
    Task ProbeAsync(SiloAddress target, CancellationToken cancellationToken);
}
