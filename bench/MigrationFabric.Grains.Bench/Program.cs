using System.Diagnostics;
using MigrationFabric.Grains;
using MigrationFabric.Grains.Bench;
using MigrationFabric.Grains.Membership;
using MigrationFabric.Grains.Messaging;
using MigrationFabric.Grains.Runtime;
using MigrationFabric.Grains.Storage;

// Usage:
//   calls [seconds] [concurrency...]   grain calls/s and p50/p99 latency: same silo, and across two silos on loopback (Rpc transport)
//   failover [rounds]                  SIGKILL a child silo process; time until its grains serve again on the survivor
//   child <membership.db> <state.db> <name>   (internal: the child silo of "failover")
var mode = args.Length > 0 ? args[0] : "calls";
return mode switch
{
    "calls" => await CallsBench.RunAsync(args.Length > 1 ? int.Parse(args[1]) : 3, args.Length > 2 ? args[2..].Select(int.Parse).ToArray() : [1, 32]),
    "failover" => await FailoverBench.RunAsync(args.Length > 1 ? int.Parse(args[1]) : 3),
    "child" => await FailoverBench.RunChildAsync(args[1], args[2], args[3]),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: MigrationFabric.Grains.Bench calls [seconds] [concurrency...] | failover [rounds]");
    return 2;
}

namespace MigrationFabric.Grains.Bench
{
    /// <summary>Builds the bench silos.</summary>
    internal static class BenchSilo
    {
        public static MembershipOptions Liveness() => new()
        {
            ProbeTimeout = TimeSpan.FromSeconds(1),
            NumMissedProbesLimit = 2,
            NumVotesForDeathDeclaration = 1,
            IAmAlivePublishPeriod = TimeSpan.FromSeconds(1),
            TableVersionPollPeriod = TimeSpan.FromMilliseconds(100),
            TableRefreshTimeout = TimeSpan.FromSeconds(2),
        };

        public static Silo Build(IMembershipTable table, IGrainStorage storage, string name, MembershipOptions? liveness = null, bool fair = true) =>
            new SiloBuilder()
                .UseTransport(new RpcSiloTransport())
                .UseMembershipTable(table, liveness ?? Liveness())
                .AddGrainStorage(SiloBuilder.DefaultStorageName, storage)
                .AddPlacementDirector(SiloPrefixPlacement.Name, new SiloPrefixPlacement())
                .AddGrain<IBenchGrain, BenchGrain>(ctx => new BenchGrain(ctx.GetPersistentState<BenchState>("bench")))
                .Configure(o => { o.SiloName = name; o.FairTurnScheduling = fair; })
                .Build();
    }

    /// <summary>Closed-loop callers for a fixed time; every call timed.</summary>
    internal static class CallsBench
    {
        public static async Task<int> RunAsync(int seconds, int[] concurrencies)
        {
            Console.WriteLine($"grain calls: {Environment.ProcessorCount} cores, {seconds} s per point after 1 s warm-up, IBenchGrain.Ping(int) -> int, 64 grains");
            var table = new InMemoryMembershipTable();
            var storage = new InMemoryGrainStorage();
            // Orleans' default liveness here: the calls saturate both cores, and fast probes would declare a busy silo dead.
            await using var a = BenchSilo.Build(table, storage, "a", new MembershipOptions());
            await using var b = BenchSilo.Build(table, storage, "b", new MembershipOptions());
            // A third silo with the default (unfair) turn scheduler, for the same-run comparison of same-silo calls.
            await using var u = BenchSilo.Build(table, storage, "u", new MembershipOptions(), fair: false);
            await a.StartAsync(CancellationToken.None);
            await b.StartAsync(CancellationToken.None);
            await u.StartAsync(CancellationToken.None);
            await a.WaitForActiveSilosAsync(3, CancellationToken.None);
            await b.WaitForActiveSilosAsync(3, CancellationToken.None);
            await u.WaitForActiveSilosAsync(3, CancellationToken.None);
            Console.WriteLine($"silo a {a.Address}, silo b {b.Address}, silo u {u.Address} (default LIFO turn scheduler) (Rpc transport: HTTP/2 over loopback)");
            Console.WriteLine("scenario      callers   calls/s    p50 us    p99 us  p99.9 us   mean us    max us     calls");
            foreach (int c in concurrencies)
            {
                var local = await MeasureAsync(a, "a", c, seconds);
                var remote = await MeasureAsync(a, "b", c, seconds);
                var unfair = await MeasureAsync(u, "u", c, seconds);
                Print("same silo", c, local);
                Print("across silos", c, remote);
                Print("same, LIFO", c, unfair);
                Console.WriteLine($"  ratio across/same: throughput {remote.PerSecond / local.PerSecond:0.00}x, p50 latency {remote.P50 / local.P50:0.0}x; " +
                    $"same silo fair/LIFO turn scheduling: throughput {local.PerSecond / unfair.PerSecond:0.00}x, max latency {local.Max / unfair.Max:0.00}x");
            }
            return 0;
        }

        private static void Print(string name, int callers, Result r) =>
            Console.WriteLine($"{name,-12} {callers,8} {r.PerSecond,9:0} {r.P50,9:0.0} {r.P99,9:0.0} {r.P999,9:0.0} {r.Mean,9:0.0} {r.Max,9:0} {r.Count,9}");

        internal readonly record struct Result(double PerSecond, double P50, double P99, double P999, double Mean, double Max, int Count);

        private static async Task<Result> MeasureAsync(Silo caller, string home, int callers, int seconds)
        {
            var grains = Enumerable.Range(0, 64).Select(i => caller.GrainFactory.GetGrain<IBenchGrain>($"{home}/g{i}")).ToArray();
            foreach (var g in grains) await g.Ping(0); // activate
            var where = await grains[0].WhereAmI();
            if (home != "b" && where != caller.Address.ToString())
                throw new InvalidOperationException($"grain of silo {home} lives on {where}");
            long warmupEnd = Stopwatch.GetTimestamp() + Stopwatch.Frequency;
            long end = warmupEnd + seconds * Stopwatch.Frequency;
            var samples = new List<long>[callers];
            var tasks = new Task[callers];
            for (int w = 0; w < callers; w++)
            {
                var mine = samples[w] = new List<long>(1 << 16);
                var g = grains[w % grains.Length];
                tasks[w] = Task.Run(async () =>
                {
                    while (true)
                    {
                        long t0 = Stopwatch.GetTimestamp();
                        if (t0 >= end) break;
                        await g.Ping(1);
                        long t1 = Stopwatch.GetTimestamp();
                        if (t0 >= warmupEnd) mine.Add(t1 - t0);
                    }
                });
            }
            await Task.WhenAll(tasks);
            var all = samples.SelectMany(s => s).Order().ToArray();
            double us(long ticks) => ticks * 1_000_000.0 / Stopwatch.Frequency;
            // Mean and max too: with more callers than cores the thread pool's LIFO local queues serve some callers
            // far more often than others, so the percentiles over calls alone look better than a caller's experience.
            double mean = us((long)all.Average());
            return new Result(all.Length / (double)seconds, us(all[all.Length / 2]), us(all[(int)(all.Length * 0.99)]),
                us(all[(int)(all.Length * 0.999)]), mean, us(all[^1]), all.Length);
        }
    }

    /// <summary>Kills a child silo process with SIGKILL and times how long its grains take to serve again on the survivor.</summary>
    internal static class FailoverBench
    {
        public static async Task<int> RunAsync(int rounds)
        {
            Console.WriteLine($"failover: child silo process killed with SIGKILL; 20 durable grains on it; SQLite membership + storage; liveness ProbeTimeout 1 s, NumMissedProbesLimit 2 (bench only; tests use 3), 1 vote, table poll 100 ms");
            Console.WriteLine("round  fail-fast ms  declared-dead ms  all-serving ms");
            var totals = new List<double>();
            for (int round = 1; round <= rounds; round++)
            {
                var dir = Directory.CreateTempSubdirectory("mf-grains-failover-");
                string mdb = Path.Combine(dir.FullName, "m.db"), sdb = Path.Combine(dir.FullName, "s.db");
                var table = new SqliteMembershipTable(mdb, "bench");
                await using var survivor = BenchSilo.Build(table, new SqliteGrainStorage(sdb), "survivor");
                await survivor.StartAsync(CancellationToken.None);
                using var child = StartChild(mdb, sdb);
                string? line;
                while ((line = await child.StandardOutput.ReadLineAsync()) is not null && !line.StartsWith("READY ", StringComparison.Ordinal)) { }
                if (line is null) throw new InvalidOperationException("child silo exited: " + await child.StandardError.ReadToEndAsync());
                var victim = SiloAddress.Parse(line[6..]);
                await survivor.WaitForActiveSilosAsync(2, CancellationToken.None);
                var grains = Enumerable.Range(0, 20).Select(i => survivor.GrainFactory.GetGrain<IBenchGrain>($"victim/d{i}")).ToArray();
                foreach (var g in grains) await g.AddDurable(3);
                if (await grains[0].WhereAmI() != victim.ToString()) throw new InvalidOperationException("grains did not land on the child silo");

                long killed = Stopwatch.GetTimestamp();
                child.Kill();
                await child.WaitForExitAsync();
                double failFast = double.NaN;
                try { await grains[0].WhereAmI(); }
                catch (SiloUnavailableException) { failFast = Stopwatch.GetElapsedTime(killed).TotalMilliseconds; }
                var deadTask = survivor.Membership.WaitForAsync(v => !v.IsActive(victim), CancellationToken.None)
                    .ContinueWith(_ => Stopwatch.GetElapsedTime(killed).TotalMilliseconds, TaskScheduler.Default);
                await Task.WhenAll(grains.Select(async g =>
                {
                    while (true)
                    {
                        try
                        {
                            if (await g.AddDurable(0) != 3) throw new InvalidOperationException("state lost");
                            return;
                        }
                        catch (SiloUnavailableException) { await Task.Delay(10); }
                    }
                }));
                double serving = Stopwatch.GetElapsedTime(killed).TotalMilliseconds;
                Console.WriteLine($"{round,5} {failFast,13:0.0} {await deadTask,17:0} {serving,15:0}");
                totals.Add(serving);
                await survivor.StopAsync(CancellationToken.None);
                try { dir.Delete(true); } catch (IOException) { }
            }
            totals.Sort();
            Console.WriteLine($"median death -> all 20 grains serving again elsewhere: {totals[totals.Count / 2]:0} ms");
            return 0;
        }

        public static async Task<int> RunChildAsync(string membershipDb, string stateDb, string name)
        {
            await using var silo = BenchSilo.Build(new SqliteMembershipTable(membershipDb, "bench"), new SqliteGrainStorage(stateDb), name);
            await silo.StartAsync(CancellationToken.None);
            Console.WriteLine($"READY {silo.Address}");
            await Console.In.ReadToEndAsync();
            return 0;
        }

        private static Process StartChild(string mdb, string sdb)
        {
            var start = new ProcessStartInfo(Environment.ProcessPath!)
            {
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            if (Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet") start.ArgumentList.Add(typeof(FailoverBench).Assembly.Location);
            foreach (var a in new[] { "child", mdb, sdb, "victim" }) start.ArgumentList.Add(a);
            return Process.Start(start)!;
        }
    }
}
