using MigrationFabric.Contracts.V1;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Migration.RemotePaging;
using Xunit;

namespace MigrationFabric.Migration.Tests.MultiHost;

/// <summary>A released store refuses calls and says when the calls already inside are done, so its host unmaps the memory only after them.</summary>
public sealed class RemotePageStoreReleaseTests
{
    private const long Pages = 64;

    private static GuestMemory HeldMemory()
    {
        var memory = new GuestMemory(Pages * Page.Size);
        var contents = new byte[Page.Size];
        for (long p = 0; p < Pages; p++)
        {
            contents[0] = (byte)(p + 1);
            Assert.True(memory.TryInstall(p, PageResidency.Zero, contents));
        }
        return memory;
    }

    private static RemotePagesRequest Ask(params ulong[] pages)
    {
        var r = new RemotePagesRequest { Vm = "vm-r" };
        r.PageNumbers.Add(pages);
        return r;
    }

    [Fact]
    public async Task After_release_serve_and_store_are_refused_naming_the_vm()
    {
        using var memory = HeldMemory();
        var store = new RemotePageStore("vm-r", memory);
        Assert.Single(store.Serve(Ask(0)).Batch.PageNumbers);
        await store.ReleaseAsync().WaitAsync(TimeSpan.FromSeconds(30));
        var serve = Assert.Throws<ObjectDisposedException>(() => store.Serve(Ask(0)));
        Assert.Contains("VM vm-r", serve.Message);
        var keep = Assert.Throws<ObjectDisposedException>(() => store.Store(new StorePagesRequest { Vm = "vm-r", Batch = new PageBatch() }));
        Assert.Contains("released", keep.Message);
        Assert.True(store.ReleaseAsync().IsCompletedSuccessfully);
    }

    [Fact]
    public async Task Memory_unmapped_once_release_completes_is_never_read_by_concurrent_serving_threads()
    {
        var memory = HeldMemory();
        var store = new RemotePageStore("vm-r", memory);
        using var serving = new CountdownEvent(2);
        long served = 0;
        var threads = Enumerable.Range(0, 2).Select(i => Task.Factory.StartNew(() =>
        {
            bool signalled = false;
            try
            {
                for (ulong p = 0; ; p = (p + 1) % Pages)
                {
                    var reply = store.Serve(Ask(p, (p + 7) % Pages));
                    Assert.Equal(2, reply.Batch.PageNumbers.Count);
                    Interlocked.Increment(ref served);
                    if (!signalled) { serving.Signal(); signalled = true; }
                }
            }
            catch (ObjectDisposedException) { }
        }, TaskCreationOptions.LongRunning)).ToArray();
        Assert.True(serving.Wait(TimeSpan.FromSeconds(30)));
        await store.ReleaseAsync().WaitAsync(TimeSpan.FromSeconds(30));
        // Unmapped while the threads may still be calling: only refusals follow (a read would be an access violation).
        memory.Dispose();
        await Task.WhenAll(threads).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(Interlocked.Read(ref served) >= 2);
    }
}
