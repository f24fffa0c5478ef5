namespace MigrationFabric.Cli.Bench;

using System.Globalization;
using System.Security;
using System.Text;

/// <summary>One line of a <see cref="SvgChart.Lines"/> panel: its name in the legend and its (x, y) points.</summary>
public sealed record SvgSeries(string Name, IReadOnlyList<(double X, double Y)> Points);

/// <summary>One group of bars in a <see cref="SvgChart.Bars"/> panel: its label under the axis and one value per bar series (NaN: no bar).</summary>
public sealed record SvgBarGroup(string Label, IReadOnlyList<double> Values);

/// <summary>A small self-contained SVG writer for bench plots: panels of lines or grouped bars stacked vertically, with axes, ticks and a legend.</summary>
/// <remarks>No plotting dependency: the output is plain SVG 1.1 any browser renders. Numbers are written with the invariant culture.</remarks>
public sealed class SvgChart
{
    private const int Width = 900;
    private const int PanelHeight = 320;
    private const int Left = 80, Right = 190, Top = 40, Bottom = 50;

    /// <summary>Colours of the series, in order (repeats after the last).</summary>
    public static IReadOnlyList<string> Palette { get; } = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];

    private readonly List<string> _panels = [];

    /// <summary>The chart's title, over the first panel.</summary>
    public string Title { get; }

    /// <summary>A chart titled <paramref name="title"/>.</summary>
    public SvgChart(string title) => Title = title ?? throw new ArgumentNullException(nameof(title));

    /// <summary>Adds a panel with one polyline per series; <paramref name="markers"/> are vertical dashed lines at x with a label.</summary>
    /// <exception cref="ArgumentException">No series, a series without points, or a non-finite coordinate.</exception>
    public SvgChart Lines(string title, string xLabel, string yLabel, IReadOnlyList<SvgSeries> series, IReadOnlyList<(double X, string Label)>? markers = null)
    {
        ArgumentNullException.ThrowIfNull(series);
        if (series.Count == 0) throw new ArgumentException($"line panel '{title}' has no series.", nameof(series));
        double xMin = double.MaxValue, xMax = double.MinValue, yMax = 0;
        foreach (var s in series)
        {
            if (s.Points.Count == 0) throw new ArgumentException($"line panel '{title}': series '{s.Name}' has no points.", nameof(series));
            foreach (var (x, y) in s.Points)
            {
                if (!double.IsFinite(x) || !double.IsFinite(y))
                    throw new ArgumentException($"line panel '{title}': series '{s.Name}' has a non-finite point ({x}, {y}).", nameof(series));
                xMin = Math.Min(xMin, x);
                xMax = Math.Max(xMax, x);
                yMax = Math.Max(yMax, y);
            }
        }
        if (xMax <= xMin) xMax = xMin + 1;
        var yTop = NiceCeiling(yMax);
        var sb = new StringBuilder();
        var y0 = PanelStart(sb, title);
        double Px(double x) => Left + (x - xMin) / (xMax - xMin) * PlotWidth;
        double Py(double y) => y0 + PlotHeight - y / yTop * PlotHeight;
        Axes(sb, y0, xLabel, yLabel, xMin, xMax, yTop);
        if (markers is not null)
        {
            foreach (var (x, label) in markers)
            {
                if (!double.IsFinite(x) || x < xMin || x > xMax) continue;
                sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{Px(x):0.#}\" y1=\"{y0}\" x2=\"{Px(x):0.#}\" y2=\"{y0 + PlotHeight}\" stroke=\"#888\" stroke-dasharray=\"4 3\"/>");
                sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{Px(x) + 3:0.#}\" y=\"{y0 + 12}\" font-size=\"11\" fill=\"#555\">{Escape(label)}</text>\n");
            }
        }
        for (var i = 0; i < series.Count; i++)
        {
            sb.Append(CultureInfo.InvariantCulture, $"<polyline fill=\"none\" stroke=\"{Palette[i % Palette.Count]}\" stroke-width=\"1.8\" points=\"");
            foreach (var (x, y) in series[i].Points) sb.Append(CultureInfo.InvariantCulture, $"{Px(x):0.#},{Py(y):0.#} ");
            sb.Append("\"/>\n");
        }
        Legend(sb, y0, series.Select(s => s.Name).ToList());
        _panels.Add(sb.ToString());
        return this;
    }

    /// <summary>Adds a panel of grouped bars: one group per <paramref name="groups"/> entry, one bar per name in <paramref name="seriesNames"/>, the value written over each bar.</summary>
    /// <exception cref="ArgumentException">No groups or series, a group whose value count differs from the series', or a negative or infinite value.</exception>
    public SvgChart Bars(string title, string yLabel, IReadOnlyList<string> seriesNames, IReadOnlyList<SvgBarGroup> groups, string valueFormat = "0.##")
    {
        ArgumentNullException.ThrowIfNull(seriesNames);
        ArgumentNullException.ThrowIfNull(groups);
        if (seriesNames.Count == 0 || groups.Count == 0) throw new ArgumentException($"bar panel '{title}' needs at least one series and one group.");
        double yMax = 0;
        foreach (var g in groups)
        {
            if (g.Values.Count != seriesNames.Count)
                throw new ArgumentException($"bar panel '{title}': group '{g.Label}' has {g.Values.Count} values for {seriesNames.Count} series.", nameof(groups));
            foreach (var v in g.Values)
            {
                if (double.IsNaN(v)) continue;
                if (!double.IsFinite(v) || v < 0) throw new ArgumentException($"bar panel '{title}': group '{g.Label}' has value {v}; bars must be finite and not negative.", nameof(groups));
                yMax = Math.Max(yMax, v);
            }
        }
        var yTop = NiceCeiling(yMax);
        var sb = new StringBuilder();
        var y0 = PanelStart(sb, title);
        Axes(sb, y0, "", yLabel, double.NaN, double.NaN, yTop);
        var groupWidth = PlotWidth / groups.Count;
        var barWidth = groupWidth * 0.8 / seriesNames.Count;
        for (var g = 0; g < groups.Count; g++)
        {
            var gx = Left + g * groupWidth + groupWidth * 0.1;
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{Left + (g + 0.5) * groupWidth:0.#}\" y=\"{y0 + PlotHeight + 18}\" font-size=\"12\" text-anchor=\"middle\">{Escape(groups[g].Label)}</text>\n");
            for (var s = 0; s < seriesNames.Count; s++)
            {
                var v = groups[g].Values[s];
                if (double.IsNaN(v)) continue;
                var h = v / yTop * PlotHeight;
                var x = gx + s * barWidth;
                sb.Append(CultureInfo.InvariantCulture, $"<rect x=\"{x:0.#}\" y=\"{y0 + PlotHeight - h:0.#}\" width=\"{barWidth * 0.92:0.#}\" height=\"{h:0.#}\" fill=\"{Palette[s % Palette.Count]}\"/>");
                sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{x + barWidth * 0.46:0.#}\" y=\"{y0 + PlotHeight - h - 3:0.#}\" font-size=\"10\" text-anchor=\"middle\">{Escape(v.ToString(valueFormat, CultureInfo.InvariantCulture))}</text>\n");
            }
        }
        Legend(sb, y0, seriesNames);
        _panels.Add(sb.ToString());
        return this;
    }

    /// <summary>The SVG document.</summary>
    /// <exception cref="InvalidOperationException">No panel was added.</exception>
    public string Render()
    {
        if (_panels.Count == 0) throw new InvalidOperationException($"chart '{Title}' has no panels.");
        var height = Top + _panels.Count * PanelHeight;
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{Width}\" height=\"{height}\" viewBox=\"0 0 {Width} {height}\" font-family=\"sans-serif\">\n");
        sb.Append(CultureInfo.InvariantCulture, $"<rect width=\"{Width}\" height=\"{height}\" fill=\"white\"/>\n");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{Width / 2}\" y=\"24\" font-size=\"16\" text-anchor=\"middle\" font-weight=\"bold\">{Escape(Title)}</text>\n");
        for (var i = 0; i < _panels.Count; i++)
        {
            sb.Append(CultureInfo.InvariantCulture, $"<g transform=\"translate(0,{Top + i * PanelHeight - Top})\">\n");
            sb.Append(_panels[i]);
            sb.Append("</g>\n");
        }
        sb.Append("</svg>\n");
        return sb.ToString();
    }

    private static double PlotWidth => Width - Left - Right;

    private static double PlotHeight => PanelHeight - Top - Bottom;

    private static int PanelStart(StringBuilder sb, string title)
    {
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{Left}\" y=\"{Top + 28}\" font-size=\"13\" font-weight=\"bold\">{Escape(title)}</text>\n");
        return Top + 36;
    }

    private static void Axes(StringBuilder sb, int y0, string xLabel, string yLabel, double xMin, double xMax, double yTop)
    {
        var yAxisBottom = y0 + PlotHeight;
        sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{Left}\" y1=\"{y0}\" x2=\"{Left}\" y2=\"{yAxisBottom:0.#}\" stroke=\"black\"/>");
        sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{Left}\" y1=\"{yAxisBottom:0.#}\" x2=\"{Left + PlotWidth:0.#}\" y2=\"{yAxisBottom:0.#}\" stroke=\"black\"/>\n");
        for (var i = 0; i <= 4; i++)
        {
            var v = yTop * i / 4;
            var y = yAxisBottom - PlotHeight * i / 4;
            sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{Left - 4}\" y1=\"{y:0.#}\" x2=\"{Left + PlotWidth:0.#}\" y2=\"{y:0.#}\" stroke=\"#eee\"/>");
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{Left - 6}\" y=\"{y + 4:0.#}\" font-size=\"11\" text-anchor=\"end\">{Escape(Short(v))}</text>\n");
        }
        if (double.IsFinite(xMin))
        {
            for (var i = 0; i <= 5; i++)
            {
                var v = xMin + (xMax - xMin) * i / 5;
                var x = Left + PlotWidth * i / 5;
                sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{x:0.#}\" y=\"{yAxisBottom + 16:0.#}\" font-size=\"11\" text-anchor=\"middle\">{Escape(Short(v))}</text>\n");
            }
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{Left + PlotWidth / 2:0.#}\" y=\"{yAxisBottom + 34:0.#}\" font-size=\"12\" text-anchor=\"middle\">{Escape(xLabel)}</text>\n");
        }
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"18\" y=\"{y0 + PlotHeight / 2:0.#}\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 18 {y0 + PlotHeight / 2:0.#})\">{Escape(yLabel)}</text>\n");
    }

    private static void Legend(StringBuilder sb, int y0, IReadOnlyList<string> names)
    {
        var x = Left + PlotWidth + 16;
        for (var i = 0; i < names.Count; i++)
        {
            var y = y0 + 10 + i * 18;
            sb.Append(CultureInfo.InvariantCulture, $"<rect x=\"{x:0.#}\" y=\"{y - 9}\" width=\"14\" height=\"10\" fill=\"{Palette[i % Palette.Count]}\"/>");
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{x + 20:0.#}\" y=\"{y:0.#}\" font-size=\"12\">{Escape(names[i])}</text>\n");
        }
    }

    /// <summary>The axis top for a largest value <paramref name="v"/>: 1, 2, 2.5 or 5 times a power of ten at or above it, so the ticks are round numbers (1 when there is nothing to show).</summary>
    public static double NiceCeiling(double v)
    {
        if (v <= 0 || !double.IsFinite(v)) return 1;
        var p = Math.Pow(10, Math.Floor(Math.Log10(v)));
        foreach (var m in new[] { 1.0, 2.0, 2.5, 5.0, 10.0 })
        {
            if (m * p >= v * (1 - 1e-12)) return m * p;
        }
        return 10 * p;
    }

    private static string Short(double v) =>
        Math.Abs(v) >= 1e6 ? (v / 1e6).ToString("0.##", CultureInfo.InvariantCulture) + "M"
        : Math.Abs(v) >= 1e3 ? (v / 1e3).ToString("0.##", CultureInfo.InvariantCulture) + "k"
        : v.ToString("0.##", CultureInfo.InvariantCulture);

    private static string Escape(string s) => SecurityElement.Escape(s) ?? "";
}
