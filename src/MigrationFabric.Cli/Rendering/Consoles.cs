namespace MigrationFabric.Cli.Rendering;

using Spectre.Console;

/// <summary>Makes mf's consoles: colours, styles and live redraws only on a terminal, and never when NO_COLOR is set (no-color.org).</summary>
/// <remarks>
/// Spectre decides ANSI support from the terminal type, not from whether the stream is a terminal, so a
/// redirected stdout (a pipe, a CI log, a file) would still get escape codes in tables and markup; here a
/// stream that is not a terminal is plain text with no colour system and no interactivity.
/// </remarks>
public static class Consoles
{
    /// <summary>Width given to a console that is not a terminal: Spectre assumes 80 columns there, and tables read better unwrapped in logs and pipes.</summary>
    public const int PlainWidth = 132;

    /// <summary>Whether output to a stream should be plain text: it is not a terminal, or NO_COLOR is set to a non-empty value.</summary>
    public static bool IsPlain(bool isTerminal, Func<string, string?> environment) =>
        !isTerminal || environment("NO_COLOR") is { Length: > 0 };

    /// <summary>A console writing to <paramref name="writer"/>; <paramref name="isTerminal"/> says whether that stream is a terminal.</summary>
    public static IAnsiConsole Create(TextWriter writer, bool isTerminal, Func<string, string?> environment)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(environment);
        var settings = new AnsiConsoleSettings { Out = new AnsiConsoleOutput(writer) };
        if (IsPlain(isTerminal, environment))
        {
            settings.Ansi = AnsiSupport.No;
            settings.ColorSystem = ColorSystemSupport.NoColors;
        }
        if (!isTerminal) settings.Interactive = InteractionSupport.No;
        var console = AnsiConsole.Create(settings);
        if (!isTerminal && console.Profile.Width < PlainWidth) console.Profile.Width = PlainWidth;
        return console;
    }

    /// <summary>The console for standard output.</summary>
    public static IAnsiConsole StandardOutput() => Create(Console.Out, !Console.IsOutputRedirected, Environment.GetEnvironmentVariable);

    /// <summary>The console for standard error.</summary>
    public static IAnsiConsole StandardError() => Create(Console.Error, !Console.IsErrorRedirected, Environment.GetEnvironmentVariable);
}
