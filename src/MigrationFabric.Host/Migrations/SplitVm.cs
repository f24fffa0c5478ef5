namespace MigrationFabric.Host.Migrations;

using MigrationFabric.Contracts.V1;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Migration.MultiHost;
using MigrationFabric.Migration.RemotePaging;

/// <summary>A split VM at its main host: the library's <see cref="SplitMainHost"/> plus which host each sub-host address is, so the VM's remote shares and losses are reported by name.</summary>
public sealed class SplitVm(SplitMainHost main, IReadOnlyList<PlannedHost> subHosts) : IDisposable
{
    /// <summary>The main host's side (its pager exists once the VM resumed here).</summary>
    public SplitMainHost Main { get; } = main;

    /// <summary>The sub-hosts, in the map's order (owner k is SubHosts[k - 1]).</summary>
    public IReadOnlyList<PlannedHost> SubHosts { get; } = subHosts;

    /// <summary>The VM's memory map once it runs here; null before switch-over.</summary>
    public MemoryMap? Map => Main.IsResumed ? Main.Pager.Map : null;

    /// <summary>How much of the VM each sub-host holds now (by the map).</summary>
    public IEnumerable<MemoryShare> RemoteShares()
    {
        if (Map is not { } map) yield break;
        for (int k = 0; k < SubHosts.Count; k++)
            yield return new MemoryShare { Host = SubHosts[k].Host, Bytes = (ulong)(map.PagesOn(k + 1) * Page.Size) };
    }

    /// <summary>The host name of a sub-host lost by the pager (its address as the map names it).</summary>
    public string NameOf(SubHostLostException lost)
    {
        foreach (var s in SubHosts)
            if (new Uri(s.Endpoint).Authority == lost.SubHost.Authority) return s.Host;
        return lost.SubHost.ToString();
    }

    /// <inheritdoc />
    public void Dispose() => Main.Dispose();
}
