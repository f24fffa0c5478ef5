namespace MigrationFabric.Cli.Tests;

using Spectre.Console;

/// <summary>mf run in-process (its parser and commands) on plain, non-interactive consoles, with what it printed captured.</summary>
internal static class InProcessMf
{
    /// <summary>The exit code and both streams' text.</summary>
    public sealed record Result(int Exit, string Out, string Err);

    /// <summary>Runs mf with <paramref name="args"/>; MF_ENDPOINT is <paramref name="endpoint"/> (no other variable is set); <paramref name="width"/> keeps asserted lines from wrapping.</summary>
    public static async Task<Result> RunAsync(string? endpoint, int? width, params string[] args)
    {
        var outWriter = new StringWriter();
        var errWriter = new StringWriter();
        var output = Plain(outWriter);
        var error = Plain(errWriter);
        if (width is { } w) output.Profile.Width = error.Profile.Width = w;
        var app = new MfApp(output, error, name => name == "MF_ENDPOINT" ? endpoint : null);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        int exit = await app.RunAsync(args, cts.Token);
        return new Result(exit, outWriter.ToString(), errWriter.ToString());
    }

    private static IAnsiConsole Plain(TextWriter writer) => AnsiConsole.Create(new AnsiConsoleSettings
    {
        Out = new AnsiConsoleOutput(writer), Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors, Interactive = InteractionSupport.No,
    });
}
