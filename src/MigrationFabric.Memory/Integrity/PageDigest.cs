using System.Runtime.CompilerServices;
using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Pages;

namespace MigrationFabric.Memory.Integrity;

/// <summary>Reads the contents of a page that is not in RAM (from the swap file, from a remote host's copy...).</summary>
public interface IPageContentReader
{
    /// <summary>Copies page <paramref name="page"/>, currently <paramref name="residency"/>, into <paramref name="destination"/> (4 KiB).</summary>
    void ReadPage(PageNumber page, PageResidency residency, Span<byte> destination);
}

/// <summary>64-bit digests (XXH64 or XXH3, see <see cref="PageDigestKind"/>) of guest pages and of a whole VM, wherever each page lives; Zero and Ballooned pages digest as 4 KiB of zeroes.</summary>
/// <remarks>
/// The VM digest is XXH64 over the sequence of page digests (page order, little-endian), so two hosts that
/// hold the same VM in different places (RAM, swap, zero) agree, and a mismatch can be narrowed to pages.
/// Every method takes the page digests' kind; without one it is XXH64.
/// </remarks>
public static class PageDigest
{
    /// <summary>XXH64 digest of a page of zeroes (what a Zero or Ballooned page digests as).</summary>
    public static readonly ulong ZeroPage = Xxh64.Hash(new byte[Page.Size]);

    /// <summary>XXH3 digest of a page of zeroes.</summary>
    public static readonly ulong ZeroPageXxh3 = Xxh3.Hash(new byte[Page.Size]);

    /// <summary>The <paramref name="kind"/> digest of a page of zeroes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong ZeroPageOf(PageDigestKind kind) => kind == PageDigestKind.Xxh3 ? ZeroPageXxh3 : ZeroPage;

    /// <summary>The <paramref name="kind"/> hash of <paramref name="bytes"/> (the callers' page checks are theirs).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Hash(PageDigestKind kind, ReadOnlySpan<byte> bytes) => kind switch
    {
        PageDigestKind.Xxh3 => Xxh3.Hash(bytes),
        PageDigestKind.Xxh64 => Xxh64.Hash(bytes),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "not a page digest kind (Xxh64, Xxh3)."),
    };

    /// <summary>Digest of one page's bytes.</summary>
    public static ulong Of(ReadOnlySpan<byte> page, PageDigestKind kind = PageDigestKind.Xxh64)
    {
        if (page.Length != Page.Size)
            throw new ArgumentException($"a page digest covers exactly {Page.Size} bytes, got {page.Length}.", nameof(page));
        return Hash(kind, page);
    }

    /// <summary>Digest of page <paramref name="page"/> of <paramref name="memory"/>, reading non-resident pages through <paramref name="reader"/>.</summary>
    /// <remarks>Digest a running VM only when its vCPUs are paused, or the page may change while it is hashed.</remarks>
    public static ulong Of(GuestMemory memory, PageNumber page, IPageContentReader? reader = null, PageDigestKind kind = PageDigestKind.Xxh64)
    {
        ArgumentNullException.ThrowIfNull(memory);
        var r = memory.GetResidency(page);
        switch (r)
        {
            case PageResidency.Zero or PageResidency.Ballooned:
                return ZeroPageOf(kind);
            case PageResidency.Resident or PageResidency.Evicting:
                return Hash(kind, memory.GetPageBytes(page));
            default:
                if (reader is null)
                    throw new InvalidOperationException($"{page} is {r}: digesting it needs an IPageContentReader for that residency.");
                Span<byte> buf = stackalloc byte[Page.Size];
                reader.ReadPage(page, r, buf);
                return Hash(kind, buf);
        }
    }

    /// <summary>Digest of the whole VM; fills <paramref name="perPage"/> (if given, one entry per page) on the way.</summary>
    public static ulong OfMemory(GuestMemory memory, IPageContentReader? reader = null, Span<ulong> perPage = default, PageDigestKind kind = PageDigestKind.Xxh64)
    {
        ArgumentNullException.ThrowIfNull(memory);
        if (!perPage.IsEmpty && perPage.Length != memory.PageCount)
            throw new ArgumentException($"perPage must have one entry per page ({memory.PageCount}), had {perPage.Length}.", nameof(perPage));
        var vm = new Xxh64(0);
        for (long p = 0; p < memory.PageCount; p++)
        {
            ulong d = Of(memory, p, reader, kind);
            if (!perPage.IsEmpty) perPage[(int)p] = d;
            vm.AppendUInt64(d);
        }
        return vm.Digest();
    }
}
