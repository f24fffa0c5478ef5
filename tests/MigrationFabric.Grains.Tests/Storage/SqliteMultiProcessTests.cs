using System.Globalization;
using System.Text;
using MigrationFabric.Grains.Membership;
using MigrationFabric.Grains.Storage;
using Xunit;
using Xunit.Abstractions;

namespace MigrationFabric.Grains.Tests.Storage;

/// <summary>The SQLite stores under real concurrent processes: two writer processes plus this one on one file.</summary>
public sealed class SqliteMultiProcessTests : IClassFixture<TempDirectory>
{
    private readonly TempDirectory _dir;
    private readonly ITestOutputHelper _output;

    /// <summary>Creates the tests.</summary>
    public SqliteMultiProcessTests(TempDirectory dir, ITestOutputHelper output)
    {
        _dir = dir;
        _output = output;
    }

    [Fact]
    public async Task Writers_in_three_processes_lose_no_update_and_win_each_version_once()
    {
        const int count = 80;
        string path = _dir.NewFile("multiprocess");
        var table = new SqliteMembershipTable(path, "mp");
        var storage = new SqliteGrainStorage(path);
        await table.InitializeAsync(CancellationToken.None);
        await storage.InitializeAsync(CancellationToken.None);
        var t0 = DateTimeOffset.UnixEpoch;
        Assert.True(await table.InsertRowAsync(new MembershipEntry(SqliteChildProcess.Target, SiloStatus.Active, t0, t0), new TableVersion(1, "0"), CancellationToken.None));

        SqliteChildProcess.Warm(table, storage);
        var children = new[] { SqliteChildProcess.Start(path, "mp", 1, count), SqliteChildProcess.Start(path, "mp", 2, count) };
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            foreach (var child in children)
            {
                string? line = await ReadLineOrDiagnoseAsync(child, timeout.Token);
                Assert.True(line == "ready", $"writer process said '{line}' instead of 'ready'");
            }
            foreach (var child in children)
                await child.StandardInput.WriteLineAsync("go");
            foreach (var child in children)
                await child.StandardInput.FlushAsync(timeout.Token);

            int lostHere = await Task.Run(() => SqliteChildProcess.CasVotes(table, 0, count) + SqliteChildProcess.Increments(storage, count), timeout.Token);
            var lost = new List<int> { lostHere };
            foreach (var child in children)
            {
                string? line = await ReadLineOrDiagnoseAsync(child, timeout.Token);
                await child.WaitForExitAsync(timeout.Token);
                Assert.True(child.ExitCode == 0 && line?.StartsWith("done ", StringComparison.Ordinal) == true,
                    $"writer process exited {child.ExitCode} saying '{line}': {await child.StandardError.ReadToEndAsync(timeout.Token)}");
                lost.Add(int.Parse(line![5..], CultureInfo.InvariantCulture));
            }
            _output.WriteLine($"lost races per process: {string.Join(", ", lost)}");

            var data = await table.ReadAllAsync(CancellationToken.None);
            Assert.Equal(1 + 3 * count, data.Version.Version);
            var votes = data.Find(SqliteChildProcess.Target)!.Entry.Suspicions;
            Assert.Equal(3 * count, votes.Count);
            Assert.Equal(3 * count, votes.Select(v => v.Voter).Distinct().Count());
            var counter = await storage.ReadAsync(SqliteChildProcess.CounterKey, CancellationToken.None);
            Assert.Equal((3 * count).ToString(CultureInfo.InvariantCulture), Encoding.ASCII.GetString(counter.Data.Span));
        }
        finally
        {
            foreach (var child in children)
            {
                if (!child.HasExited)
                    child.Kill();
                child.Dispose();
            }
        }
    
    }

    [Fact]
    public async Task A_process_killed_holding_the_write_lock_neither_wedges_nor_corrupts_the_file()
    {
        string path = _dir.NewFile("killed-writer");
        var table = new SqliteMembershipTable(path, "kill");
        await table.InitializeAsync(CancellationToken.None);
        var t0 = DateTimeOffset.UnixEpoch;
        Assert.True(await table.InsertRowAsync(new MembershipEntry(SqliteChildProcess.Target, SiloStatus.Active, t0, t0), new TableVersion(1, "0"), CancellationToken.None));

        using var holder = SqliteChildProcess.StartHolder(path);
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            Assert.Equal("holding", await ReadLineOrDiagnoseAsync(holder, timeout.Token));
            var second = new MembershipEntry(new SiloAddress("127.0.0.1", 2, 1), SiloStatus.Joining, t0, t0);
            var write = Task.Run(() => table.InsertRowAsync(second, new TableVersion(2, "1"), CancellationToken.None));
            await Task.WhenAny(write, Task.Delay(300, timeout.Token));
            Assert.False(write.IsCompleted, "the write should queue behind the other process's lock");

            holder.Kill(); // SIGKILL mid-transaction: the OS drops its lock, SQLite rolls its change back
            await holder.WaitForExitAsync(timeout.Token);
            Assert.True(await write.WaitAsync(timeout.Token));
            var data = await table.ReadAllAsync(timeout.Token);
            Assert.Equal(2, data.Version.Version); // the killed process's +100 never happened
            Assert.Equal(2, data.Rows.Count);
        }
        finally
        {
            if (!holder.HasExited)
                holder.Kill();
        }
    }

    private static async Task<string?> ReadLineOrDiagnoseAsync(System.Diagnostics.Process child, CancellationToken cancellationToken)
    {
        try
        {
            return await child.StandardOutput.ReadLineAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            if (!child.HasExited)
                child.Kill();
            throw new TimeoutException($"writer process {child.Id} did not answer in time; stderr: {await child.StandardError.ReadToEndAsync(CancellationToken.None)}");
        }
    }
}
