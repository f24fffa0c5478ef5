namespace MigrationFabric.Migration.RemotePaging;

/// <summary>A split VM's sub-host stopped answering: the pages only it held are lost, and a vCPU touching one stops.</summary>
public sealed class SubHostLostException(string vm, Uri subHost, long pagesLost, Exception cause)
    : Exception($"VM {vm}: sub-host {subHost} is lost ({cause.Message}); {pagesLost} pages held only there are lost with it.", cause)
{
    /// <summary>The VM.</summary>
    public string Vm { get; } = vm;

    /// <summary>The sub-host's address.</summary>
    public Uri SubHost { get; } = subHost;

    /// <summary>Pages that were Remote at the main host (held only by the sub-host) when it was lost.</summary>
    public long PagesLost { get; } = pagesLost;
}
