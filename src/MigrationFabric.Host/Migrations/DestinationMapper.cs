namespace MigrationFabric.Host.Migrations;

using MigrationFabric.Contracts.V1;
using LibProgress = MigrationFabric.Migration.Reporting.MigrationProgress;

/// <summary>Names the library's per-destination progress (keyed by data-plane address) by the plan's hosts, with their role and planned pages.</summary>
public static class DestinationMapper
{
    /// <summary>The progress event of <paramref name="p"/>, one DestinationProgress per receiving host of <paramref name="plan"/>.</summary>
    public static MigrationEvent Event(LibProgress p, MigrationPlan plan)
    {
        var e = ReportMapper.Event(p, plan.Destination.Host);
        e.Destinations.Clear();
        if (p.Destinations.Count == 0)
        {
            e.Destinations.Add(Progress(plan.Destination, p.BytesSent, p.PagesSent));
            return e;
        }
        foreach (var d in p.Destinations)
        {
            var host = Find(plan, d.Host) ?? new PlannedHost(d.Host, "", d.Role.ToString(), 0, d.PlannedPages);
            var progress = Progress(host, d.BytesSent, d.PagesSent);
            if (d.PlannedPages > 0) progress.PagesPlanned = (ulong)d.PlannedPages;
            e.Destinations.Add(progress);
        }
        return e;
    }

    /// <summary>Renames the report's per-destination rows (data-plane addresses) to host names, with role and planned pages.</summary>
    public static void NameReport(MigrationReport report, MigrationPlan plan)
    {
        foreach (var d in report.PerDestination)
            if (Find(plan, d.Host) is { } host)
            {
                d.Host = host.Host;
                d.Role = host.Role;
                d.PagesPlanned = (ulong)host.PagesPlanned;
            }
    }

    /// <summary>Names the hosts in a library error message (which knows addresses only): "host-c (127.0.0.1:7003)".</summary>
    public static string NameHosts(string message, MigrationPlan plan)
    {
        foreach (var h in plan.Others.Prepend(plan.Destination))
        {
            if (!Uri.TryCreate(h.Endpoint, UriKind.Absolute, out var uri)) continue;
            string named = $"'{h.Host}' ({uri.Authority})";
            message = message.Replace(uri.ToString(), named, StringComparison.Ordinal)
                .Replace(uri.ToString().TrimEnd('/'), named, StringComparison.Ordinal);
        }
        return message;
    }

    /// <summary>The planned host whose name or data-plane authority (host:port) is <paramref name="key"/>.</summary>
    public static PlannedHost? Find(MigrationPlan plan, string key)
    {
        foreach (var h in plan.Others.Prepend(plan.Destination))
            if (h.Host == key || (Uri.TryCreate(h.Endpoint, UriKind.Absolute, out var uri) && uri.Authority == key)) return h;
        return null;
    }

    private static DestinationProgress Progress(PlannedHost host, long bytes, long pages) => new()
    {
        Host = host.Host,
        Role = host.Role,
        BytesSent = (ulong)Math.Max(0, bytes),
        Pages = (ulong)Math.Max(0, pages),
        PagesPlanned = (ulong)Math.Max(0, host.PagesPlanned),
    };
}
