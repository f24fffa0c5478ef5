using MigrationFabric.Cli;
using Spectre.Console;

var error = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
return await new MfApp(AnsiConsole.Console, error).RunAsync(args);
