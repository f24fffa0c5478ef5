namespace MigrationFabric.Rpc.Bench;

/// <summary>Median and percentiles over measured samples.</summary>
internal static class Stats
{
    public static double Median(IReadOnlyList<double> samples) => Percentile(samples, 0.5);

    /// <summary>Nearest-rank percentile (p in 0..1).</summary>
    public static double Percentile(IReadOnlyList<double> samples, double p)
    {
        if (samples.Count == 0)
        {
            throw new ArgumentException("no samples", nameof(samples));
        }

        var sorted = samples.ToArray();
        Array.Sort(sorted);
        var rank = (int)Math.Ceiling(p * sorted.Length);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)];
    }

    public static string Join(IEnumerable<double> values, string format) =>
        string.Join(' ', values.Select(v => v.ToString(format, System.Globalization.CultureInfo.InvariantCulture)));
}
