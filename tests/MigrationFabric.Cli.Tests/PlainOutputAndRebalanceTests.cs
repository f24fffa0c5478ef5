namespace MigrationFabric.Cli.Tests;

using System.Diagnostics;
using MigrationFabric.Cli.Commands;
using MigrationFabric.Cli.Rendering;
using MigrationFabric.Contracts.V1;
using Spectre.Console;
using Xunit;

/// <summary>mf prints plain text when its output is not a terminal or NO_COLOR is set; `mf host rebalance` prints each VM's target.</summary>
public sealed class PlainOutputAndRebalanceTests(CliCluster fixture) : IClassFixture<CliCluster>
{
    private const char Escape = '\u001b';

    private static Func<string, string?> Env(params (string Name, string Value)[] vars) =>
        name => vars.FirstOrDefault(v => v.Name == name).Value;

    private static RebalanceMemoryResponse SampleResponse() => new()
    {
        DividedBytes = 64UL << 20,
        Targets =
        {
            new VmMemoryTarget { Vm = "a", DemandBytes = 20UL << 20, BeforeBytes = 8UL << 20, TargetBytes = 22UL << 20, Applied = true, PrivateMemory = true, Weight = 1, Note = "share set" },
            new VmMemoryTarget { Vm = "b", DemandBytes = 0, BeforeBytes = 16UL << 20, TargetBytes = 12UL << 20, Applied = false, Weight = 2, Note = "not applied: fully resident" },
        },
    };

    private static string Render(IAnsiConsole console, StringWriter writer)
    {
        HostCommands.Print(console, "host-a", dryRun: false, SampleResponse());
        return writer.ToString();
    }

    [Fact]
    public void A_console_that_is_not_a_terminal_prints_no_escape_codes()
    {
        var writer = new StringWriter();
        string text = Render(Consoles.Create(writer, isTerminal: false, Env(("TERM", "xterm-256color"))), writer);
        Assert.DoesNotContain(Escape, text);
        Assert.Contains("yes", text);
        Assert.Contains("fully resident", text);

        // The same rendering on a console that does speak ANSI has escape codes: the check above can fail.
        var ansiWriter = new StringWriter();
        var ansi = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(ansiWriter), Ansi = AnsiSupport.Yes, ColorSystem = ColorSystemSupport.TrueColor });
        Assert.Contains(Escape, Render(ansi, ansiWriter));
    }

    [Fact]
    public void NO_COLOR_makes_even_a_terminal_plain_and_an_empty_NO_COLOR_does_not()
    {
        Assert.True(Consoles.IsPlain(isTerminal: true, Env(("NO_COLOR", "1"))));
        Assert.False(Consoles.IsPlain(isTerminal: true, Env(("NO_COLOR", ""))));
        Assert.False(Consoles.IsPlain(isTerminal: true, Env()));
        Assert.True(Consoles.IsPlain(isTerminal: false, Env()));
        var writer = new StringWriter();
        var console = Consoles.Create(writer, isTerminal: true, Env(("NO_COLOR", "1")));
        Assert.False(console.Profile.Capabilities.Ansi);
        Assert.DoesNotContain(Escape, Render(console, writer));
    }

    [Fact]
    public void A_console_that_is_not_a_terminal_is_not_interactive_and_is_wide()
    {
        var console = Consoles.Create(new StringWriter(), isTerminal: false, Env());
        Assert.False(console.Profile.Capabilities.Interactive);
        Assert.True(console.Profile.Width >= Consoles.PlainWidth);
    }

    [Fact]
    public void A_reports_recovery_reads_as_a_time_or_says_why_there_is_none()
    {
        Assert.Equal("120.0 ms", RecoveryText.Of(new MigrationReport { Recovery = RecoveryOutcome.Recovered, RecoveryTime = Google.Protobuf.WellKnownTypes.Duration.FromTimeSpan(TimeSpan.FromMilliseconds(120)) }));
        Assert.Equal("not within 5.00 s", RecoveryText.Of(new MigrationReport { Recovery = RecoveryOutcome.NotRecovered, RecoveryWindow = Google.Protobuf.WellKnownTypes.Duration.FromTimeSpan(TimeSpan.FromSeconds(5)) }));
        Assert.Equal("no baseline", RecoveryText.Of(new MigrationReport { Recovery = RecoveryOutcome.NoBaseline }));
        Assert.Equal("not observed", RecoveryText.Of(new MigrationReport { Recovery = RecoveryOutcome.NotObserved }));
        Assert.Equal("-", RecoveryText.Of(new MigrationReport()));
    }

    /// <summary>The real mf program, its stdout a pipe, with a TERM that would make Spectre colour it.</summary>
    private async Task<(int Exit, string Out, string Err)> MfProcess(params string[] args)
    {
        string mf = Path.Combine(AppContext.BaseDirectory, "mf.dll");
        Assert.True(File.Exists(mf), $"{mf} is missing: the Cli project's output should be beside the tests");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(mf);
        foreach (var a in args) start.ArgumentList.Add(a);
        start.ArgumentList.Add("--endpoint");
        start.ArgumentList.Add(fixture.Cluster.Endpoint.ToString());
        start.Environment["TERM"] = "xterm-256color";
        start.Environment["COLORTERM"] = "truecolor";
        start.Environment.Remove("NO_COLOR");
        using var process = Process.Start(start)!;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        var stdout = process.StandardOutput.ReadToEndAsync(cts.Token);
        var stderr = process.StandardError.ReadToEndAsync(cts.Token);
        await process.WaitForExitAsync(cts.Token);
        return (process.ExitCode, await stdout, await stderr);
    }

    [Fact]
    public async Task Mf_host_rebalance_through_a_pipe_prints_the_targets_in_plain_text()
    {
        var a = fixture.Cluster.Agents.First();
        await using (var vm = await CreateVm(a.HostName, "rb-cli-1"))
        {
            var (exit, stdout, stderr) = await MfProcess("host", "rebalance", a.HostName, "--dry-run");
            Assert.True(exit == 0, stdout + stderr);
            Assert.DoesNotContain(Escape, stdout);
            Assert.Contains("dry run", stdout);
            Assert.Contains("rb-cli-1", stdout);
            Assert.Contains("target", stdout);

            var applied = await MfProcess("host", "rebalance", a.HostName);
            Assert.True(applied.Exit == 0, applied.Out + applied.Err);
            Assert.DoesNotContain(Escape, applied.Out);
            Assert.Contains("rb-cli-1", applied.Out);
        }
    }

    [Fact]
    public async Task Mf_host_rebalance_of_an_unknown_host_is_not_found_with_exit_code_1()
    {
        var (exit, stdout, stderr) = await MfProcess("host", "rebalance", "no-such-host");
        Assert.Equal(1, exit);
        Assert.Contains("NotFound", stderr);
        Assert.Contains("no-such-host", stderr);
        Assert.DoesNotContain(Escape, stderr);
        Assert.DoesNotContain(Escape, stdout);
    }

    [Fact]
    public async Task Mf_vm_create_with_a_share_makes_an_over_committed_vm_that_host_rebalance_reports_as_private()
    {
        var host = fixture.Cluster.Agents[1];
        var created = await MfProcess("vm", "create", "rb-cli-2", "--host", host.HostName, "--memory", "32MiB", "--workload", "hot-set",
            "--share", "8MiB", "--reservation", "4MiB", "--weight", "2");
        Assert.True(created.Exit == 0, created.Out + created.Err);
        try
        {
            var local = host.Hypervisor.Find("rb-cli-2")!;
            Assert.NotNull(local.Pager);
            Assert.Equal(8L << 20, local.ShareBytes);
            Assert.Equal(4L << 20, local.ReservationBytes);
            Assert.Equal(2u, local.Weight);
            var r = await MfProcess("host", "rebalance", host.HostName, "--dry-run");
            Assert.True(r.Exit == 0, r.Out + r.Err);
            Assert.Contains("private share", r.Out);
            Assert.Contains("4.0 MiB", r.Out);
        }
        finally
        {
            await new DeletedOnDispose(fixture.Cluster.Endpoint, "rb-cli-2").DisposeAsync();
        }
        var bad = await MfProcess("vm", "create", "rb-cli-3", "--host", host.HostName, "--share", "lots");
        Assert.Equal(2, bad.Exit);
        Assert.Contains("--share", bad.Err);
    }

    private async Task<DeletedOnDispose> CreateVm(string host, string name)
    {
        using var client = new MigrationFabric.Cli.Client.FabricClient(fixture.Cluster.Endpoint);
        await client.CreateVmAsync(new CreateVmRequest { Name = name, Host = host, MemoryBytes = 32UL << 20, Workload = new Workload { Kind = WorkloadKind.HotSet } }, CancellationToken.None);
        return new DeletedOnDispose(fixture.Cluster.Endpoint, name);
    }

    private sealed class DeletedOnDispose(Uri endpoint, string name) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            using var client = new MigrationFabric.Cli.Client.FabricClient(endpoint);
            await client.DeleteVmAsync(name, CancellationToken.None);
        }
    }
}
