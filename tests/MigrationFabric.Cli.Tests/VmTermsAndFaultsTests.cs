namespace MigrationFabric.Cli.Tests;

using System.Text.RegularExpressions;
using MigrationFabric.Cli.Rendering;
using MigrationFabric.Contracts.V1;
using Migration = MigrationFabric.Contracts.V1.Migration;
using Spectre.Console;
using Xunit;

/// <summary>`mf vm list` shows a VM's reservation and weight, and a FAULTED VM with its vCPU error; a report names its data channel.</summary>
public sealed class VmTermsAndFaultsTests(CliCluster fixture) : IClassFixture<CliCluster>
{
    private const char Escape = '\u001b';

    private Task<InProcessMf.Result> Mf(params string[] args) => InProcessMf.RunAsync(fixture.Cluster.Endpoint.ToString(), 200, args);

    private static string RowOf(string output, string vm) =>
        output.Split('\n').SingleOrDefault(l => !l.StartsWith("FAULTED:", StringComparison.Ordinal) && Regex.IsMatch(l, $@"\b{Regex.Escape(vm)}\b")) ?? throw new Xunit.Sdk.XunitException($"no row for {vm} in:\n{output}");

    [Fact]
    public async Task Vm_list_shows_the_reservation_and_weight_the_vm_was_created_with()
    {
        var created = await Mf("vm", "create", "h6-terms", "--host", "host-a", "--memory", "32MiB", "--reservation", "4MiB", "--weight", "3");
        Assert.True(created.Exit == 0, created.Out + created.Err);
        var plain = await Mf("vm", "create", "h6-plain", "--host", "host-a", "--memory", "16MiB");
        Assert.True(plain.Exit == 0, plain.Out + plain.Err);
        try
        {
            var list = await Mf("vm", "list", "--host", "host-a");
            Assert.True(list.Exit == 0, list.Out + list.Err);
            Assert.Contains("reservation", list.Out);
            Assert.Contains("weight", list.Out);
            // memory, then reservation, then weight, in their columns.
            Assert.Matches(@"32\.0 MiB\W+4\.0 MiB\W+3\W", RowOf(list.Out, "h6-terms"));
            // No reservation asked: none shown; no weight asked: the API's 1.
            Assert.Matches(@"16\.0 MiB\W+-\W+1\W", RowOf(list.Out, "h6-plain"));
            Assert.Contains("running", RowOf(list.Out, "h6-terms"));
            Assert.DoesNotContain("FAULTED", list.Out);

            var one = await Mf("vm", "describe", "h6-terms");
            Assert.True(one.Exit == 0, one.Out + one.Err);
            Assert.Matches(@"32\.0 MiB\W+4\.0 MiB\W+3\W", RowOf(one.Out, "h6-terms"));
            Assert.DoesNotContain("h6-plain", one.Out);
        }
        finally
        {
            Assert.Equal(0, (await Mf("vm", "rm", "h6-terms")).Exit);
            Assert.Equal(0, (await Mf("vm", "rm", "h6-plain")).Exit);
        }
    }

    [Fact]
    public async Task Vm_describe_of_an_unknown_vm_is_not_found_with_exit_code_1()
    {
        var r = await Mf("vm", "describe", "h6-no-such-vm");
        Assert.Equal(1, r.Exit);
        Assert.Contains("NotFound (5)", r.Err);
        Assert.Contains("h6-no-such-vm", r.Err);
    }

    private static Vm Faulted() => new()
    {
        Name = "h6-dead", Host = "host-b", MemoryBytes = 64UL << 20, ResidentBytes = 48UL << 20, ReservationBytes = 8UL << 20, Weight = 2,
        State = VmState.Faulted, VcpuError = "PageFaultException: page 4242 was held only by sub-host 'host-d', which is lost",
        Workload = new Workload { Kind = WorkloadKind.HotSet },
    };

    private static (IAnsiConsole Console, StringWriter Text) Console(bool ansi)
    {
        var writer = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(writer), Ansi = ansi ? AnsiSupport.Yes : AnsiSupport.No,
            ColorSystem = ansi ? ColorSystemSupport.TrueColor : ColorSystemSupport.NoColors, Interactive = InteractionSupport.No,
        });
        console.Profile.Width = 200;
        return (console, writer);
    }

    [Fact]
    public void A_faulted_vm_stands_out_with_its_vcpu_error_in_plain_output()
    {
        var running = new Vm { Name = "h6-fine", Host = "host-a", MemoryBytes = 16UL << 20, State = VmState.Running, Weight = 1 };
        var (console, text) = Console(ansi: false);
        VmTable.Write(console, [running, Faulted()]);
        string output = text.ToString();
        Assert.DoesNotContain(Escape, output);
        Assert.Matches(@"64\.0 MiB\W+8\.0 MiB\W+2\W", RowOf(output, "h6-dead"));
        Assert.Contains("FAULTED", RowOf(output, "h6-dead"));
        Assert.Contains("running", RowOf(output, "h6-fine"));
        var said = output.Split('\n').Where(l => l.StartsWith("FAULTED:", StringComparison.Ordinal)).ToList();
        Assert.Equal(["FAULTED: VM h6-dead on host-b: its vCPUs stopped: PageFaultException: page 4242 was held only by sub-host 'host-d', which is lost"],
            said.Select(l => l.TrimEnd()));
    }

    [Fact]
    public void On_a_terminal_a_faulted_vm_is_red_and_a_faulted_state_without_an_error_still_says_so()
    {
        var (console, text) = Console(ansi: true);
        VmTable.Write(console, [Faulted()]);
        Assert.Matches("\u001b\\[[0-9;]*m[^\u001b]*FAULTED", text.ToString());

        var silent = Faulted();
        silent.VcpuError = "";
        var (plain, plainText) = Console(ansi: false);
        VmTable.Write(plain, [silent]);
        Assert.Contains("FAULTED: VM h6-dead on host-b: its vCPUs stopped: (no error given)", plainText.ToString());
    }

    [Fact]
    public void A_report_names_its_data_channel()
    {
        Assert.Equal("TCP", DataChannelText.Of(new MigrationReport { DataChannel = DataChannelKind.Tcp }));
        Assert.Equal("gRPC", DataChannelText.Of(new MigrationReport { DataChannel = DataChannelKind.Grpc }));
        Assert.Equal("not reported", DataChannelText.Of(new MigrationReport()));
        Assert.Equal("not reported", DataChannelText.Of(null));
    }

    [Fact]
    public void A_completed_migrations_outcome_line_says_which_data_channel_carried_the_pages()
    {
        var (output, text) = Console(ansi: false);
        var (error, _) = Console(ansi: false);
        var app = new MfApp(output, error, _ => null);
        var m = new Migration
        {
            Phase = MigrationPhase.Completed,
            Report = new MigrationReport
            {
                TotalTime = Google.Protobuf.WellKnownTypes.Duration.FromTimeSpan(TimeSpan.FromSeconds(1)),
                Downtime = Google.Protobuf.WellKnownTypes.Duration.FromTimeSpan(TimeSpan.FromMilliseconds(20)),
                DataChannel = DataChannelKind.Grpc, BytesSent = 1UL << 20, Integrity = new IntegrityCheck { PagesChecked = 256 } },
        };
        MigrationFabric.Cli.Commands.ClientCommands.PrintOutcome(app, m);
        Assert.Contains("data channel gRPC", text.ToString());
    }
}
