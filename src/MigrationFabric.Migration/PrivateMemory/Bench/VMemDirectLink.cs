using System.Globalization;

namespace MigrationFabric.Migration.PrivateMemory.Bench;

/// <summary>The migration link a <see cref="VMemDirectBench"/> ran with: its cap (null: uncapped) and, when derived, the swap write rate it was derived from.</summary>
/// <param name="BytesPerSecond">The cap every kind's migration ran under; null: uncapped.</param>
/// <param name="MeasuredSwapWriteBytesPerSecond">This machine's swap write rate (<see cref="SwapWriteProbe"/>) when the cap was derived from it, else null.</param>
public sealed record VMemDirectLink(double? BytesPerSecond, double? MeasuredSwapWriteBytesPerSecond)
{
    /// <summary>One line saying what the link was and why.</summary>
    public string Describe()
    {
        var c = CultureInfo.InvariantCulture;
        if (BytesPerSecond is not { } cap) return "link uncapped (loopback as fast as the 2 cores move it)";
        var capText = string.Format(c, "link capped at {0:0} Mbit/s ({1:0} MB/s) for every kind", cap * 8 / 1e6, cap / 1e6);
        if (MeasuredSwapWriteBytesPerSecond is not { } disk) return capText + " (--link-mbps)";
        return string.Format(c,
            "{0} = the paper's network:swap-write ratio {1:0.000} (10 GbE = 1250 MB/s over the Samsung 970 PRO's 2700 MB/s datasheet sequential write) x this machine's swap write rate {2:0} MB/s (1 MiB runs into a swap file as the bench's, median of 3 passes)",
            capText, VMemDirectBenchOptions.PaperLinkToSwapWrite, disk / 1e6);
    }
}
