using MigrationFabric.Cli;
using Spectre.Console;

var output = AnsiConsole.Console;
var error = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
// Without a terminal Spectre assumes 80 columns; tables read better unwrapped in logs and pipes.
foreach (var console in new[] { output, error })
    if (!console.Profile.Capabilities.Interactive && console.Profile.Width < 132) console.Profile.Width = 132;
return await new MfApp(output, error).RunAsync(args);
