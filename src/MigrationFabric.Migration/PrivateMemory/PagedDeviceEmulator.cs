using System.Diagnostics;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Mmu;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Swap;

namespace MigrationFabric.Migration.PrivateMemory;

/// <summary>The naive baseline's device emulator at the destination (its own memory, outside the VM's) under the host's ordinary swap: paged out when the arriving VM fills memory, paged back in at the resume before the VM runs.</summary>
/// <remarks>
/// Seed 004: with traditional virtual memory the emulator's pages are the least recently used when the migration fills the
/// host's memory, so they go to swap; the resume then waits for their page-ins (the paper's extra naive downtime).
/// VMemDirect's emulator runs outside the private virtual memory, so it has none of this. The pages are real: a swap file
/// (direct I/O as the VM's), page-outs in 1 MiB chunks and faults with the naive readahead window.
/// </remarks>
public sealed class PagedDeviceEmulator : IAsyncDisposable
{
    private readonly GuestMemory _memory;
    private readonly PrivateVirtualMemory _pager;
    private readonly SoftwareMmu _mmu;
    private int _pagedOut;

    /// <summary>An emulator of <paramref name="pages"/> pages, all resident (it started before the migration), paged like <paramref name="template"/> says (swap directory, direct I/O, readahead).</summary>
    public PagedDeviceEmulator(long pages, PrivateVirtualMemoryOptions? template = null)
    {
        if (pages < 1) throw new ArgumentOutOfRangeException(nameof(pages), pages, "the device emulator has at least one page.");
        _memory = new GuestMemory(pages * Page.Size);
        var path = template?.SwapFilePath is { } p ? Path.Combine(Path.GetDirectoryName(p) ?? Path.GetTempPath(), $"mf-emulator-{Guid.NewGuid():N}.swap") : null;
        _pager = new PrivateVirtualMemory(_memory, new PrivateVirtualMemoryOptions
        {
            SharePages = pages, Mode = PagingMode.Naive, SwapFilePath = path, DirectIo = template?.DirectIo ?? false,
            NaiveReadaheadPages = template?.NaiveReadaheadPages ?? 8, ScanAccessBitsPeriodically = false,
        });
        _mmu = new SoftwareMmu(_memory, _pager);
        using var cpu = _mmu.CreateVcpu();
        Span<byte> page = stackalloc byte[Page.Size];
        for (long i = 0; i < pages; i++)
        {
            page.Fill((byte)(i * 13 + 5));
            BitConverter.TryWriteBytes(page, ~i);
            cpu.Write(i << Page.Shift, page);
        }
    }

    /// <summary>The emulator's pages.</summary>
    public long Pages => _memory.PageCount;

    /// <summary>True once <see cref="PageOut"/> ran and until <see cref="PageInAsync"/>.</summary>
    public bool IsPagedOut => Volatile.Read(ref _pagedOut) != 0;

    /// <summary>How long the last <see cref="PageInAsync"/> took (in the downtime).</summary>
    public TimeSpan PageInTime { get; private set; }

    /// <summary>The emulator's paging counters.</summary>
    public PagingStatistics Statistics => _pager.Statistics;

    /// <summary>Writes every emulator page to swap and drops its RAM (the host's LRU took it for the arriving VM), synchronously, as direct reclaim does; not thread-safe (one caller at a time).</summary>
    public void PageOut()
    {
        if (IsPagedOut) return;
        _pager.SetSharePages(1);
        _pager.SettleAsync().GetAwaiter().GetResult();
        Volatile.Write(ref _pagedOut, 1);
    }

    /// <summary>The emulator runs again: it touches its whole working set, faulting each swapped page in; returns when all are resident.</summary>
    public async Task PageInAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _pagedOut, 0) == 0) return;
        var started = Stopwatch.GetTimestamp();
        _pager.SetSharePages(_memory.PageCount);
        await Task.Run(() =>
        {
            using var cpu = _mmu.CreateVcpu(cancellationToken);
            Span<byte> page = stackalloc byte[Page.Size];
            for (long i = 0; i < _memory.PageCount; i++)
            {
                cpu.Read(i << Page.Shift, page);
                if (BitConverter.ToInt64(page) != ~i)
                    throw new InvalidOperationException($"device emulator page {i} came back from swap with other bytes.");
            }
        }, cancellationToken).ConfigureAwait(false);
        PageInTime = Stopwatch.GetElapsedTime(started);
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        _mmu.Dispose();
        await _pager.DisposeAsync().ConfigureAwait(false);
        _memory.Dispose();
    }
}
