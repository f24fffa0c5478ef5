using System.Runtime.InteropServices;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Swap;
using Xunit;

namespace MigrationFabric.Memory.Tests.Swap;

/// <summary>PrivateVirtualMemory.PreallocateStaging: RAM behind the free staging buffers, staged pages untouched, nothing in naive mode.</summary>
public sealed partial class PreallocateStagingTests : IDisposable
{
    private const int Chunk = 64;
    private readonly string _dir = Directory.CreateTempSubdirectory("mf-prealloc-staging-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private PrivateVirtualMemoryOptions Options(PagingMode mode) => new()
    {
        Mode = mode, SharePages = Chunk * 2, ChunkPages = Chunk, PlacementStagingChunks = 4, AsyncPlacementWrites = false,
        SwapFilePath = Path.Combine(_dir, $"vm-{Guid.NewGuid():N}.swap"), ScanAccessBitsPeriodically = false,
    };

    private static byte[] Contents(long page)
    {
        var b = new byte[Page.Size];
        new Random((int)page).NextBytes(b);
        return b;
    }

    [Fact]
    public async Task Free_staging_buffers_get_their_ram_and_a_buffer_holding_staged_pages_keeps_them()
    {
        using var memory = new GuestMemory(8L << 20);
        await using var pvm = new PrivateVirtualMemory(memory, Options(PagingMode.AsyncMethod1));
        // The share (minus its one-chunk reserve) takes chunk 0; half of chunk 4 goes to swap and waits in a staging buffer.
        for (long p = 0; p < Chunk; p++) Assert.Equal(PlacementTarget.Memory, pvm.PlacePage(p, Contents(p)));
        const long first = 4 * Chunk;
        for (long p = first; p < first + Chunk / 2; p++) Assert.Equal(PlacementTarget.Swap, pvm.PlacePage(p, Contents(p)));
        Assert.Equal(1, pvm.StagedChunks);
        var residentBefore = memory.ResidentPages;

        Assert.Equal(3L * Chunk * Page.Size, pvm.PreallocateStaging());

        // The three free buffers are all RAM now (the taken one has RAM behind at least the half its staged pages filled;
        // more if the allocator reused memory someone touched before).
        var resident = pvm.StageBufferAddresses.Select(b => ResidentPagesOf(b, Chunk)).Order().ToArray();
        Assert.True(resident[0] >= Chunk / 2, $"the staging buffer in use has {resident[0]} pages of RAM");
        Assert.Equal([Chunk, Chunk, Chunk], resident[1..]);
        // The staged pages were not cleared, and the guest's own residency did not change.
        var buf = new byte[Page.Size];
        for (long p = first; p < first + Chunk / 2; p++)
        {
            Assert.Equal(PageResidency.Swapped, pvm.ReadPage(p, buf));
            Assert.True(buf.AsSpan().SequenceEqual(Contents(p)), $"staged page {p} changed");
        }
        Assert.Equal(residentBefore, memory.ResidentPages);
        Assert.Equal(1, pvm.StagedChunks);
    }

    [Fact]
    public async Task Naive_paging_stages_nothing_so_nothing_is_preallocated_and_a_disposed_pager_refuses()
    {
        using var memory = new GuestMemory(1L << 20);
        var pvm = new PrivateVirtualMemory(memory, Options(PagingMode.Naive));
        Assert.Equal(0, pvm.PreallocateStaging());
        await pvm.DisposeAsync();
        Assert.Throws<ObjectDisposedException>(() => pvm.PreallocateStaging());
    }

    private static unsafe int ResidentPagesOf(nint address, int pages)
    {
        var vec = stackalloc byte[pages];
        Assert.Equal(0, Mincore(address, (nuint)pages * Page.Size, vec));
        var n = 0;
        for (var i = 0; i < pages; i++) n += vec[i] & 1;
        return n;
    }

    [LibraryImport("libc", EntryPoint = "mincore", SetLastError = true)]
    private static unsafe partial int Mincore(nint addr, nuint length, byte* vec);
}
