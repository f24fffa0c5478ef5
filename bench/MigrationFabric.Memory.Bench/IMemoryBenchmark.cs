namespace MigrationFabric.Memory.Bench;

/// <summary>One benchmark of the Memory part, picked by name on the command line; the dispatcher finds every implementation by reflection.</summary>
public interface IMemoryBenchmark
{
    /// <summary>Name given after `--`, e.g. "dirty-scan".</summary>
    string Name { get; }

    /// <summary>One line saying what is measured.</summary>
    string Description { get; }

    /// <summary>Runs once, printing its results to stdout.</summary>
    Task RunAsync(string[] args, CancellationToken cancellationToken);
}
