using MigrationFabric.Memory.Pages;

namespace MigrationFabric.Memory.Guest;

/// <summary>Told whenever a page becomes Resident (first touch, fault-in, install, deflate); pagers use it to track new pages and the budget.</summary>
/// <remarks>Called on the thread that made the page resident, often a vCPU thread: keep it short, thread-safe and non-blocking.</remarks>
public interface IResidencyObserver
{
    /// <summary>Page <paramref name="page"/> went from <paramref name="from"/> to Resident.</summary>
    void OnResident(PageNumber page, PageResidency from);
}
