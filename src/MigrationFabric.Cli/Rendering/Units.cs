namespace MigrationFabric.Cli.Rendering;

using System.Globalization;

/// <summary>Sizes and rates as people type and read them ("64MiB", "1.5 GiB/s").</summary>
public static class Units
{
    /// <summary>Parses "65536", "64MiB", "64M", "1GiB", "1g", "512KiB" (binary multiples); null when malformed.</summary>
    public static ulong? ParseBytes(string text)
    {
        string t = text.Trim().Replace(" ", "", StringComparison.Ordinal);
        if (t.EndsWith("/s", StringComparison.OrdinalIgnoreCase)) t = t[..^2];
        int i = 0;
        while (i < t.Length && (char.IsAsciiDigit(t[i]) || t[i] == '.')) i++;
        if (i == 0 || !double.TryParse(t[..i], NumberStyles.Float, CultureInfo.InvariantCulture, out double n) || n < 0) return null;
        string unit = t[i..].ToLowerInvariant();
        double mult = unit switch
        {
            "" or "b" => 1,
            "k" or "kb" or "kib" => 1L << 10,
            "m" or "mb" or "mib" => 1L << 20,
            "g" or "gb" or "gib" => 1L << 30,
            "t" or "tb" or "tib" => 1L << 40,
            _ => -1,
        };
        if (mult < 0) return null;
        double v = n * mult;
        return v > ulong.MaxValue ? null : (ulong)Math.Round(v);
    }

    /// <summary>"64.0 MiB".</summary>
    public static string Bytes(double bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB"];
        int u = 0;
        while (Math.Abs(bytes) >= 1024 && u < units.Length - 1)
        {
            bytes /= 1024;
            u++;
        }
        return u == 0 ? $"{bytes:0} B" : string.Create(CultureInfo.InvariantCulture, $"{bytes:0.0} {units[u]}");
    }

    /// <summary>"12.3 ms" or "1.23 s".</summary>
    public static string Duration(TimeSpan t) =>
        t.TotalSeconds >= 1 ? string.Create(CultureInfo.InvariantCulture, $"{t.TotalSeconds:0.00} s") : string.Create(CultureInfo.InvariantCulture, $"{t.TotalMilliseconds:0.0} ms");
}
