using System.Diagnostics;
using System.Text.Json;

namespace MigrationFabric.Rpc.Tests.Interop;

/// <summary>Runs one of the tests/interop node programs to completion and reads its JSON result lines.</summary>
internal static class NodeScript
{
    /// <summary>What a run printed: exit code, stdout/stderr text and one parsed result per JSON line.</summary>
    public sealed record Outcome(int ExitCode, string Stdout, string Stderr, IReadOnlyList<CaseResult> Cases)
    {
        public string Describe() => $"exit code {ExitCode}\n--- stdout\n{Stdout}\n--- stderr\n{Stderr}";
    }

    /// <summary>One {"case","ok","ms","error"} line.</summary>
    public sealed record CaseResult(string Case, bool Ok, long Ms, string? Error, string Json);

    public static async Task<Outcome> RunAsync(string script, IEnumerable<string> arguments, TimeSpan timeout)
    {
        NodeInterop.EnsureAvailable();
        var info = new ProcessStartInfo(NodeInterop.Node)
        {
            WorkingDirectory = NodeInterop.Directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(Path.Combine(NodeInterop.Directory, script));
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        using var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {NodeInterop.Node}");
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            throw new TimeoutException($"node {script} {string.Join(' ', info.ArgumentList.Skip(1))} did not finish within {timeout}:\n{await stdout}\n{await stderr}");
        }

        var outText = await stdout;
        var cases = new List<CaseResult>();
        foreach (var line in outText.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!line.StartsWith('{'))
            {
                continue;
            }

            using var doc = JsonDocument.Parse(line);
            var root = doc.RootElement;
            cases.Add(new CaseResult(
                root.GetProperty("case").GetString()!,
                root.GetProperty("ok").GetBoolean(),
                root.TryGetProperty("ms", out var ms) ? ms.GetInt64() : 0,
                root.TryGetProperty("error", out var error) ? error.GetString() : null,
                line));
        }

        return new Outcome(process.ExitCode, outText, await stderr, cases);
    }

    /// <summary>Asserts that the run passed exactly the named case, with node's own words in the failure message.</summary>
    public static void AssertPassed(Outcome outcome, string name)
    {
        var result = outcome.Cases.SingleOrDefault(c => c.Case == name);
        Assert.True(result is not null, $"node printed no result for case {name}: {outcome.Describe()}");
        Assert.True(result.Ok, $"grpc-js case {name} failed: {result.Error}\n{outcome.Describe()}");
        Assert.True(outcome.ExitCode == 0, $"node exited non-zero although case {name} passed: {outcome.Describe()}");
    }

    /// <summary>The case names a script offers (its --list output).</summary>
    public static async Task<IReadOnlyList<string>> ListAsync(string script)
    {
        var outcome = await RunAsync(script, ["--list"], TimeSpan.FromSeconds(60));
        Assert.True(outcome.ExitCode == 0, outcome.Describe());
        return outcome.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
    }
}
