namespace MigrationFabric.Memory.Pages;

/// <summary>Index of a 4 KiB page in a VM's guest-physical memory (page p starts at byte p * 4096).</summary>
public readonly record struct PageNumber(long Value) : IComparable<PageNumber>
{
    /// <summary>Guest-physical address of the page's first byte.</summary>
    public long Address => Value << Page.Shift;

    /// <summary>The page that holds guest-physical address <paramref name="address"/>.</summary>
    public static PageNumber Containing(long address) => new(address >> Page.Shift);

    /// <inheritdoc/>
    public int CompareTo(PageNumber other) => Value.CompareTo(other.Value);

    /// <summary>Page numbers are plain indices on the data plane.</summary>
    public static implicit operator long(PageNumber page) => page.Value;

    /// <summary>Any index names a page; range checks happen where memory is touched.</summary>
    public static implicit operator PageNumber(long value) => new(value);

    /// <summary>Orders page numbers.</summary>
    public static bool operator <(PageNumber a, PageNumber b) => a.Value < b.Value;

    /// <summary>Orders page numbers.</summary>
    public static bool operator >(PageNumber a, PageNumber b) => a.Value > b.Value;

    /// <summary>Orders page numbers.</summary>
    public static bool operator <=(PageNumber a, PageNumber b) => a.Value <= b.Value;

    /// <summary>Orders page numbers.</summary>
    public static bool operator >=(PageNumber a, PageNumber b) => a.Value >= b.Value;

    /// <inheritdoc/>
    public override string ToString() => $"page {Value}";
}
