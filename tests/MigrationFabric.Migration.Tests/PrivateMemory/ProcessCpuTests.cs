using MigrationFabric.Migration.PrivateMemory.Bench;

namespace MigrationFabric.Migration.Tests.PrivateMemory;

public sealed class ProcessCpuTests : IDisposable
{
    private readonly string _proc = Directory.CreateTempSubdirectory("mf-proc-").FullName;

    public void Dispose() => Directory.Delete(_proc, recursive: true);

    // proc(5)'s stat line with utime and stime (fields 14 and 15) set; the rest as a real one has them.
    private static string Stat(int pid, string comm, long utime, long stime) =>
        $"{pid} ({comm}) R 1 {pid} {pid} 0 -1 4194304 2048 0 0 0 {utime} {stime} 0 0 20 0 9 0 1234 56789 100 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";

    private void Task(int tid, string comm, long utime, long stime)
    {
        var dir = Directory.CreateDirectory(Path.Combine(_proc, "task", tid.ToString()));
        File.WriteAllText(Path.Combine(dir.FullName, "stat"), Stat(tid, comm, utime, stime));
    }

    [Fact]
    public void The_vcpu_threads_are_split_from_the_rest_of_the_process()
    {
        File.WriteAllText(Path.Combine(_proc, "stat"), Stat(100, "mf", 400, 100));
        Task(100, "mf", 200, 50);
        Task(101, "vcpu-membench-", 90, 30);
        Task(102, "vcpu-kv-0", 25, 5);
        Task(103, ".NET TP Worker", 40, 10);
        Task(105, "mf-pvm-writer-1", 12, 8);
        // A thread gone between the listing and the read is skipped (its time stays in the process's).
        Directory.CreateDirectory(Path.Combine(_proc, "task", "104"));

        var cpu = Assert.NotNull(ProcessCpu.Read(_proc));

        Assert.Equal(TimeSpan.FromSeconds(1.5), cpu.Vcpus);
        Assert.Equal(TimeSpan.FromSeconds(3.5), cpu.Fabric);
        // The swap writers are fabric threads, counted apart as well.
        Assert.Equal(TimeSpan.FromSeconds(0.2), cpu.SwapWriters);
        Assert.Equal(new ProcessCpu(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(0.5), TimeSpan.FromSeconds(0.1)),
            cpu.Since(new ProcessCpu(TimeSpan.FromSeconds(2.5), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(0.1))));
    }

    [Fact]
    public void A_command_name_with_spaces_and_parentheses_ends_at_the_last_parenthesis()
    {
        var (name, ticks) = ProcessCpu.ParseStat(Stat(7, "vcpu-a) (b", 12, 3), "stat");

        Assert.Equal("vcpu-a) (b", name);
        Assert.Equal(15, ticks);
    }

    [Theory]
    [InlineData("7 mf R 1")]
    [InlineData("7 (mf) R 1 2 3")]
    [InlineData("7 (mf) R 1 7 7 0 -1 4194304 2048 0 0 0 x 3 0")]
    public void A_stat_line_not_in_procs_format_is_refused_with_the_file_named(string line)
    {
        var e = Assert.Throws<InvalidDataException>(() => ProcessCpu.ParseStat(line, "/proc/9/stat"));

        Assert.Contains("/proc/9/stat", e.Message);
    }

    [Fact]
    public void Without_a_proc_directory_there_is_no_reading()
    {
        Assert.Null(ProcessCpu.Read(Path.Combine(_proc, "absent")));
    }

    [Fact]
    public void A_running_thread_named_as_a_vcpu_is_counted_as_one_on_this_machine()
    {
        if (!OperatingSystem.IsLinux())
        {
            Console.WriteLine("SKIPPED: /proc is Linux's; ProcessCpu reads nothing elsewhere.");
            return;
        }
        var before = Assert.NotNull(ProcessCpu.Read());
        using var stop = new ManualResetEventSlim();
        var spinner = new Thread(() =>
        {
            while (!stop.IsSet) Thread.SpinWait(1000);
        }) { IsBackground = true, Name = "vcpu-cpu-test" };
        spinner.Start();
        try
        {
            // The kernel counts in ticks of 10 ms: spin until one shows (bounded, so a broken reading fails instead of hanging).
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            ProcessCpu now;
            do
            {
                Thread.Sleep(50);
                now = Assert.NotNull(ProcessCpu.Read());
            }
            while (now.Since(before).Vcpus <= TimeSpan.Zero && DateTime.UtcNow < deadline);

            Assert.True(now.Since(before).Vcpus > TimeSpan.Zero, $"a spinning vcpu- thread showed no CPU in 30 s: {now.Since(before)}");
        }
        finally
        {
            stop.Set();
            spinner.Join();
        }
    }
}
