using System.Diagnostics;
using MigrationFabric.Grains.Membership;
using MigrationFabric.Grains.Messaging;
using MigrationFabric.Grains.Runtime;
using MigrationFabric.Grains.Storage;
using MigrationFabric.Grains.TestSilo;
using Xunit;
using Xunit.Abstractions;

namespace MigrationFabric.Grains.Tests.Runtime;

/// <summary>A silo in a real separate process, SQLite membership and storage, killed with SIGKILL.</summary>
public sealed class ProcessKillTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_silo_process_killed_with_SIGKILL_fails_calls_fast_then_its_grains_come_back_here_with_their_state()
    {
        var dir = Directory.CreateTempSubdirectory("mf-grains-kill-");
        string membershipDb = Path.Combine(dir.FullName, "membership.db"), storageDb = Path.Combine(dir.FullName, "state.db");
        var table = new SqliteMembershipTable(membershipDb, "test");
        await using var survivor = SiloFactory.Create(table, new SqliteGrainStorage(storageDb), new RpcSiloTransport(), "survivor");
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await survivor.StartAsync(cts.Token);

        using var child = TestSiloProcess.Start(membershipDb, storageDb, "victim");
        try
        {
            var victimAddress = SiloAddress.Parse(await TestSiloProcess.WaitForReadyAsync(child, cts.Token));
            await survivor.WaitForActiveSilosAsync(2, cts.Token);

            string[] keys = ["victim/a", "victim/b", "victim/c"];
            foreach (var key in keys)
            {
                var g = survivor.GrainFactory.GetGrain<IDurableCounterGrain>(key);
                await g.Add(10);
                await g.Add(5);
                Assert.Equal(victimAddress.ToString(), await g.WhereAmI()); // it really lives in the other process
            }

            var killedAt = Stopwatch.GetTimestamp();
            child.Kill(); // SIGKILL on Linux: no shutdown code runs in the child
            await child.WaitForExitAsync(cts.Token);

            var failFast = Stopwatch.GetTimestamp();
            var error = await Assert.ThrowsAsync<SiloUnavailableException>(() => survivor.GrainFactory.GetGrain<IDurableCounterGrain>(keys[0]).Get());
            Assert.Equal(victimAddress, error.Silo);
            var failMs = Stopwatch.GetElapsedTime(failFast).TotalMilliseconds;
            Assert.True(failMs < 5000, $"the call to a killed silo took {failMs} ms to fail");

            foreach (var key in keys)
            {
                var g = survivor.GrainFactory.GetGrain<IDurableCounterGrain>(key);
                Assert.Equal(15, await InProcessMultiSiloTests.RetryWhileUnavailable(() => g.Get()));
                Assert.Equal(survivor.Address.ToString(), await g.WhereAmI());
            }
            output.WriteLine($"fail-fast call: {failMs:0.0} ms; death -> all grains serving again on the survivor: {Stopwatch.GetElapsedTime(killedAt).TotalMilliseconds:0} ms");
            Assert.False(survivor.Membership.Current.IsActive(victimAddress));
        }
        finally
        {
            if (!child.HasExited) child.Kill();
            await survivor.StopAsync(CancellationToken.None);
            try { dir.Delete(recursive: true); } catch (IOException) { }
        }
    }
}

/// <summary>Starts tests/MigrationFabric.Grains.TestSilo as a child process.</summary>
public static class TestSiloProcess
{
    public static Process Start(string membershipDb, string storageDb, string name)
    {
        string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host
            : Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet" ? Environment.ProcessPath! : "dotnet";
        var start = new ProcessStartInfo(dotnet)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("exec");
        start.ArgumentList.Add(SiloDll());
        start.ArgumentList.Add(membershipDb);
        start.ArgumentList.Add(storageDb);
        start.ArgumentList.Add(name);
        return Process.Start(start) ?? throw new InvalidOperationException($"Could not start '{dotnet}'.");
    }

    public static async Task<string> WaitForReadyAsync(Process child, CancellationToken cancellationToken)
    {
        while (true)
        {
            var line = await child.StandardOutput.ReadLineAsync(cancellationToken)
                ?? throw new InvalidOperationException($"The test silo exited before READY: {await child.StandardError.ReadToEndAsync(cancellationToken)}");
            if (line.StartsWith("READY ", StringComparison.Ordinal)) return line["READY ".Length..];
        }
    }

    private static string SiloDll()
    {
        // The referenced project's own output has its runtimeconfig; prefer it, else the copy beside the tests.
        var baseDir = new DirectoryInfo(AppContext.BaseDirectory);
        string tfm = baseDir.Name, config = baseDir.Parent!.Name;
        var own = Path.GetFullPath(Path.Combine(baseDir.FullName, "..", "..", "..", "..", "MigrationFabric.Grains.TestSilo", "bin", config, tfm, "MigrationFabric.Grains.TestSilo.dll"));
        if (File.Exists(own)) return own;
        return Path.Combine(baseDir.FullName, "MigrationFabric.Grains.TestSilo.dll");
    }
}
