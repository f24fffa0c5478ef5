namespace MigrationFabric.Memory.Pages;

/// <summary>Where a guest page's contents live right now (one byte per page in <see cref="Guest.GuestMemory"/>).</summary>
public enum PageResidency : byte
{
    /// <summary>Never touched (or handed back): contents are all zeroes and hold no RAM. A vCPU's first write makes it Resident without a fault.</summary>
    Zero = 0,

    /// <summary>In this host's RAM, readable and writable by vCPUs.</summary>
    Resident = 1,

    /// <summary>In the VM's private swap file; a vCPU access faults it in.</summary>
    Swapped = 2,

    /// <summary>Owned by another host (post-copy destination, split migration); a vCPU access faults it in.</summary>
    Remote = 3,

    /// <summary>Taken by the balloon: no RAM, not transferred, zero when given back. A vCPU touch deflates it on demand.</summary>
    Ballooned = 4,

    /// <summary>Transitional: leaving RAM (contents still readable by the evictor); vCPUs wait until the eviction completes or is cancelled.</summary>
    Evicting = 5,

    /// <summary>Transitional: being filled by exactly one installer; vCPUs wait until it is Resident.</summary>
    Installing = 6,
}

/// <summary>What a vCPU was doing when it touched a page.</summary>
public enum PageAccess : byte
{
    /// <summary>A load.</summary>
    Read = 0,

    /// <summary>A store (sets the dirty bit).</summary>
    Write = 1,
}
