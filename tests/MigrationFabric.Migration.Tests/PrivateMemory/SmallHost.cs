using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Integrity;
using MigrationFabric.Memory.Swap;
using MigrationFabric.Migration.Tests.Support;
using MigrationFabric.Migration.PrivateMemory;

namespace MigrationFabric.Migration.Tests.PrivateMemory;

/// <summary>A destination agent whose budget is below the VM's size: its own RpcServer and the VM's memory behind private virtual memory.</summary>
public sealed class SmallHost : IAsyncDisposable
{
    private SmallHost(Agent agent, GuestMemory memory, PrivateMemoryDestination destination)
    {
        Agent = agent;
        Memory = memory;
        Destination = destination;
    }

    public Agent Agent { get; }
    public GuestMemory Memory { get; }
    public PrivateMemoryDestination Destination { get; }
    public PrivateVirtualMemory Pager => Destination.Pager;

    public static async Task<SmallHost> StartAsync(long vmBytes, long sharePages, PagingMode mode, long deviceEmulatorPages = 0)
    {
        var agent = await Agent.StartAsync();
        var memory = new GuestMemory(vmBytes);
        // The periodic access scan is off so the LRU only moves with what the test does.
        var destination = new PrivateMemoryDestination(memory, sharePages, mode, new PrivateVirtualMemoryOptions { ScanAccessBitsPeriodically = false }, deviceEmulatorPages);
        return new SmallHost(agent, memory, destination);
    }

    /// <summary>The VM's digest here, reading swapped pages from the swap file.</summary>
    public ulong Digest() => PageDigest.OfMemory(Memory, new PrivateMemoryReader(Pager));

    public async ValueTask DisposeAsync()
    {
        await Destination.DisposeAsync();
        Memory.Dispose();
        await Agent.DisposeAsync();
    }
}
