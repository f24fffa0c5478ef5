namespace MigrationFabric.Cli.Rendering;

using MigrationFabric.Contracts.V1;

/// <summary>One progress bar per receiving host of a migration (split main and sub-hosts, scatter-gather intermediates and destination), beside the migration's own bar.</summary>
/// <remarks>A host's bar is added the first time an event names it; its percentage is pages received of pages planned when the plan says, otherwise by phase.</remarks>
public sealed class DestinationBars(IMigrationBars bars, IMigrationBar overall) : IMigrationBar
{
    private readonly Dictionary<string, IMigrationBar> _hosts = new(StringComparer.Ordinal);

    /// <summary>Hosts with a bar, in the order they appeared.</summary>
    public IReadOnlyCollection<string> Hosts => _hosts.Keys;

    /// <inheritdoc />
    public void Update(MigrationEvent e)
    {
        overall.Update(e);
        var destinations = e.Destinations.Count > 0 ? e.Destinations : e.Final?.Report?.PerDestination;
        if (destinations is null) return;
        foreach (var d in destinations)
        {
            if (!_hosts.TryGetValue(d.Host, out var bar))
            {
                bar = bars.Add($"  {d.Host}{(d.Role.Length > 0 ? $" ({d.Role})" : "")}");
                _hosts.Add(d.Host, bar);
            }
            bar.Update(Of(e, d));
        }
    }

    /// <summary>The event as seen by one host: its bytes and pages, what is planned for it still to come.</summary>
    private static MigrationEvent Of(MigrationEvent e, DestinationProgress d)
    {
        var one = new MigrationEvent
        {
            MigrationId = e.MigrationId, At = e.At, Phase = e.Phase, Round = e.Round, BytesSent = d.BytesSent,
            BytesRemaining = d.PagesPlanned > d.Pages ? (d.PagesPlanned - d.Pages) * 4096 : 0,
            ThrottlePercent = e.ThrottlePercent, Final = e.Final,
        };
        one.Destinations.Add(d);
        return one;
    }
}
