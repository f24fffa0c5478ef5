using MigrationFabric.Cli;
using MigrationFabric.Cli.Rendering;

// Plain text (no ANSI codes) when a stream is not a terminal or NO_COLOR is set; see Consoles.
return await new MfApp(Consoles.StandardOutput(), Consoles.StandardError()).RunAsync(args);
