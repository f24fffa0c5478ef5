namespace MigrationFabric.Memory.Pages;

/// <summary>Geometry of a guest page: 4 KiB, as x86 small pages and KVM's dirty log.</summary>
public static class Page
{
    /// <summary>Bytes in one guest page.</summary>
    public const int Size = 4096;

    /// <summary>log2(<see cref="Size"/>): an address shifted right by this is its page number.</summary>
    public const int Shift = 12;

    /// <summary>Mask of the offset inside a page.</summary>
    public const long OffsetMask = Size - 1;

    /// <summary>Number of pages that hold <paramref name="bytes"/> bytes; throws unless a whole positive number of pages.</summary>
    public static long CountFor(long bytes, string what = "size")
    {
        if (bytes <= 0)
            throw new ArgumentOutOfRangeException(what, bytes, $"{what} must be positive, was {bytes} bytes.");
        if ((bytes & OffsetMask) != 0)
            throw new ArgumentException($"{what} must be a multiple of {Size} bytes (one page), was {bytes} bytes.", what);
        return bytes >> Shift;
    }
}
