namespace MigrationFabric.Cli;

using System.CommandLine;
using MigrationFabric.Cli.Commands;
using MigrationFabric.Rpc;
using Spectre.Console;

/// <summary>The `mf` command line: its commands, where it writes, and how errors become exit codes.</summary>
public sealed class MfApp
{
    /// <summary>The endpoint when neither --endpoint nor MF_ENDPOINT says otherwise.</summary>
    public const string DefaultEndpoint = "http://127.0.0.1:7001";

    /// <summary>An app writing results to <paramref name="output"/> and errors to <paramref name="error"/>.</summary>
    public MfApp(IAnsiConsole output, IAnsiConsole error, Func<string, string?>? environment = null)
    {
        Output = output;
        Error = error;
        var env = environment ?? Environment.GetEnvironmentVariable;
        Endpoint = new Option<string>("--endpoint", "-e")
        {
            Description = "A host agent's gRPC endpoint (any agent answers for the cluster). Default: MF_ENDPOINT, else " + DefaultEndpoint,
            Recursive = true,
            DefaultValueFactory = _ => env("MF_ENDPOINT") is { Length: > 0 } e ? e : DefaultEndpoint,
        };
    }

    /// <summary>Where results go.</summary>
    public IAnsiConsole Output { get; }

    /// <summary>Where errors go.</summary>
    public IAnsiConsole Error { get; }

    /// <summary>The global --endpoint option.</summary>
    public Option<string> Endpoint { get; }

    /// <summary>The command tree.</summary>
    public RootCommand Build()
    {
        var root = new RootCommand("mf: drive a MigrationFabric cluster, or start one on this machine.");
        root.Options.Add(Endpoint);
        root.Subcommands.Add(DemoCommand.Create(this));
        root.Subcommands.Add(UpCommand.Create(this));
        root.Subcommands.Add(AgentCommand.Create(this));
        root.Subcommands.Add(ClientCommands.Hosts(this));
        root.Subcommands.Add(HostCommands.Host(this));
        root.Subcommands.Add(ClientCommands.Vm(this));
        root.Subcommands.Add(ClientCommands.Migrate(this));
        root.Subcommands.Add(ClientCommands.Migrations(this));
        root.Subcommands.Add(ClientCommands.Cancel(this));
        root.Subcommands.Add(BenchCommand.Create(this));
        return root;
    }

    /// <summary>Parses and runs <paramref name="args"/>; returns the exit code.</summary>
    public async Task<int> RunAsync(string[] args, CancellationToken cancellationToken = default)
    {
        var parsed = Build().Parse(args);
        // Ctrl-C and SIGTERM (Kubernetes stopping a pod) cancel the command's token, so `mf up` and `mf agent`
        // leave the cluster in order; System.CommandLine's own handler is off so there is one owner.
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        void OnSignal(System.Runtime.InteropServices.PosixSignalContext context)
        {
            context.Cancel = true;
            stop.Cancel();
        }
        using var sigint = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, OnSignal);
        using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, OnSignal);
        var config = new InvocationConfiguration
        {
            Output = new ConsoleWriter(Output), Error = new ConsoleWriter(Error), EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = null,
        };
        return await parsed.InvokeAsync(config, stop.Token).ConfigureAwait(false);
    }

    /// <summary>Runs a command body, turning failures into a message on the error console and exit code 1.</summary>
    public async Task<int> Guard(Func<Task<int>> body)
    {
        try
        {
            return await body().ConfigureAwait(false);
        }
        catch (RpcException e)
        {
            Error.MarkupLine($"[red]error:[/] {Markup.Escape(e.StatusCode.ToString())} ({(int)e.StatusCode}): {Markup.Escape(e.Status.Detail)}");
            return 1;
        }
        catch (UsageException e)
        {
            Error.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}");
            return 2;
        }
        catch (OperationCanceledException)
        {
            Error.MarkupLine("[yellow]cancelled[/]");
            return 130;
        }
    }

    /// <summary>Text written by System.CommandLine (help, parse errors) lands on the same console.</summary>
    private sealed class ConsoleWriter(IAnsiConsole console) : TextWriter
    {
        public override System.Text.Encoding Encoding => System.Text.Encoding.UTF8;

        public override void Write(char value) => console.Profile.Out.Writer.Write(value);

        public override void Write(string? value) => console.Profile.Out.Writer.Write(value);

        public override void WriteLine(string? value) => console.Profile.Out.Writer.WriteLine(value);
    }
}

/// <summary>The command line was wrong (a bad size, an unknown strategy ...).</summary>
public sealed class UsageException(string message) : Exception(message);
