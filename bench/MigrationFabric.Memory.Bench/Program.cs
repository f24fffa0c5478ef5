using System.Reflection;
using System.Runtime.InteropServices;
using MigrationFabric.Memory.Bench;

// Usage: dotnet run -c Release --project bench/MigrationFabric.Memory.Bench -- <benchmark-name> [args]
var benchmarks = typeof(IMemoryBenchmark).Assembly.GetTypes()
    .Where(t => typeof(IMemoryBenchmark).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false })
    .Select(t => (IMemoryBenchmark)Activator.CreateInstance(t)!)
    .OrderBy(b => b.Name, StringComparer.Ordinal)
    .ToList();

if (args.Length == 0 || args[0] is "-h" or "--help" or "list")
{
    Console.WriteLine("usage: MigrationFabric.Memory.Bench <benchmark> [args]   (or 'all')");
    foreach (var b in benchmarks) Console.WriteLine($"  {b.Name,-20} {b.Description}");
    return args.Length == 0 ? 1 : 0;
}

var selected = args[0] == "all" ? benchmarks : benchmarks.Where(b => b.Name == args[0]).ToList();
if (selected.Count == 0)
{
    Console.Error.WriteLine($"unknown benchmark '{args[0]}'; known: {string.Join(", ", benchmarks.Select(b => b.Name))}");
    return 2;
}

using var cts = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) => { e.Cancel = true; cts.Cancel(); };
Console.WriteLine($"machine: {MachineInfo.Describe()}");
foreach (var b in selected)
{
    Console.WriteLine($"== {b.Name}: {b.Description}");
    await b.RunAsync(args[1..], cts.Token);
}
return 0;

namespace MigrationFabric.Memory.Bench
{
    /// <summary>What the numbers were measured on.</summary>
    internal static class MachineInfo
    {
        public static string Describe()
        {
            string cpu = "unknown cpu";
            try
            {
                cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? cpu;
            }
            catch (IOException) { }
            string mem = "";
            try
            {
                var total = File.ReadLines("/proc/meminfo").First(l => l.StartsWith("MemTotal", StringComparison.Ordinal));
                mem = $", {long.Parse(total.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024 / 1024} GiB RAM";
            }
            catch (Exception e) when (e is IOException or InvalidOperationException or FormatException) { }
            return $"{cpu}, {Environment.ProcessorCount} cores{mem}, {RuntimeInformation.OSDescription}, .NET {Environment.Version}";
        }
    }
}
