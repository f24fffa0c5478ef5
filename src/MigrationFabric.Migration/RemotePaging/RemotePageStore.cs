using MigrationFabric.Contracts.V1;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Migration.Codec;

namespace MigrationFabric.Migration.RemotePaging;

/// <summary>A sub-host's part of a split VM: holds the pages its main host does not, serves them on the main's faults (RemotePages) and takes the main's page-outs (StorePages).</summary>
/// <remarks>
/// The pages live in a guest memory the size of the whole VM, of which only the held pages take RAM. The main
/// host never fetches a page it is storing (the page is Evicting there and its vCPUs wait), so one page's
/// fetch and store never overlap.
/// </remarks>
public sealed class RemotePageStore
{
    private long _served, _stored;
    private int _callers, _released;
    private readonly TaskCompletionSource _idle = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Holds VM <paramref name="vm"/>'s pages in <paramref name="memory"/>.</summary>
    public RemotePageStore(string vm, GuestMemory memory)
    {
        ArgumentException.ThrowIfNullOrEmpty(vm);
        ArgumentNullException.ThrowIfNull(memory);
        Vm = vm;
        Memory = memory;
    }

    /// <summary>The VM.</summary>
    public string Vm { get; }

    /// <summary>Where its pages are held.</summary>
    public GuestMemory Memory { get; }

    /// <summary>Pages holding RAM here.</summary>
    public long PagesHeld => Memory.ResidentPages;

    /// <summary>Pages sent to the main host's faults.</summary>
    public long PagesServed => Volatile.Read(ref _served);

    /// <summary>Pages received from the main host's page-outs.</summary>
    public long PagesStored => Volatile.Read(ref _stored);

    /// <summary>Builds the reply to a main host's fault: every asked page (never held: zeroes), with the checksum kind the request names.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A page is outside the VM.</exception>
    /// <exception cref="UnsupportedChecksumException">The request names a checksum kind this build does not know.</exception>
    /// <exception cref="ObjectDisposedException">The store was released (<see cref="ReleaseAsync"/>).</exception>
    public RemotePagesResponse Serve(RemotePagesRequest request)
    {
        Enter();
        try { return ServeHeld(request); }
        finally { Exit(); }
    }

    private RemotePagesResponse ServeHeld(RemotePagesRequest request)
    {
        var checksum = PageChecksums.FromWire(request.Checksum);
        var builder = new PageBatchBuilder(Math.Min(1024, Math.Max(1, request.PageNumbers.Count)), checksum: checksum);
        foreach (ulong p in request.PageNumbers)
        {
            if (p >= (ulong)Memory.PageCount) throw new ArgumentOutOfRangeException(nameof(request), $"page {p} is outside VM {Vm}'s {Memory.PageCount} pages.");
            if (builder.IsFull) break;
            long page = (long)p;
            if (Memory.GetResidency(page) is PageResidency.Resident) builder.AddPage(page, Memory.GetPageBytes(page), PageFlags.Urgent);
            else builder.AddZeroPage(page, PageFlags.Urgent);
        }
        Interlocked.Add(ref _served, builder.Count);
        // Not returned to the pool: the server serializes the reply after this returns.
        return new RemotePagesResponse { Batch = builder.Build(0).Batch };
    }

    /// <summary>Keeps the pages of a main host's page-out (verified against their checksums).</summary>
    /// <exception cref="PageChecksumException">A page does not match its checksum; pages before it were kept.</exception>
    /// <exception cref="PageBatchFormatException">The batch is malformed.</exception>
    /// <exception cref="UnsupportedChecksumException">The request names a checksum kind this build does not know.</exception>
    /// <exception cref="ObjectDisposedException">The store was released (<see cref="ReleaseAsync"/>).</exception>
    public StorePagesResponse Store(StorePagesRequest request)
    {
        Enter();
        try { return StoreHeld(request); }
        finally { Exit(); }
    }

    private StorePagesResponse StoreHeld(StorePagesRequest request)
    {
        var reader = new PageBatchReader(request.Batch ?? new PageBatch(), Memory.PageCount, PageChecksums.FromWire(request.Checksum));
        int n = 0;
        while (reader.TryRead(out var entry))
        {
            long page = entry.Page;
            var state = Memory.GetResidency(page);
            if (entry.IsZero)
            {
                entry.VerifyZero();
                if (state == PageResidency.Resident) Memory.TryDiscard(page, PageResidency.Zero);
            }
            else if (state == PageResidency.Resident) entry.DecodeInto(Memory.GetPageBytes(page));
            else
            {
                var target = Memory.BeginInstall(page, state);
                if (target.IsEmpty) throw new InvalidOperationException($"page {page} of VM {Vm} is {Memory.GetResidency(page)} here and cannot be stored.");
                try { entry.DecodeInto(target); }
                catch { Memory.AbortInstall(page, state); throw; }
                Memory.CompleteInstall(page, state);
            }
            n++;
        }
        Interlocked.Add(ref _stored, n);
        return new StorePagesResponse { PagesHeld = (ulong)PagesHeld };
    }

    /// <summary>Refuses every later Serve and Store; completes once the calls already inside are done, after which the memory may be unmapped.</summary>
    /// <remarks>A call found the store before its host let go of it and may still be reading or writing the memory: unmapping under it is an access violation.</remarks>
    public Task ReleaseAsync()
    {
        // Full fences on both sides (Exchange here, Increment in Enter): either a caller sees the release, or this sees the caller.
        Interlocked.Exchange(ref _released, 1);
        if (Volatile.Read(ref _callers) == 0) _idle.TrySetResult();
        return _idle.Task;
    }

    private void Enter()
    {
        Interlocked.Increment(ref _callers);
        if (Volatile.Read(ref _released) == 0) return;
        Exit();
        throw new ObjectDisposedException(nameof(RemotePageStore), $"the pages of VM {Vm} are no longer held here (released).");
    }

    private void Exit()
    {
        if (Interlocked.Decrement(ref _callers) == 0 && Volatile.Read(ref _released) != 0) _idle.TrySetResult();
    }
}
