namespace MigrationFabric.Rpc.Tests.Interop;

/// <summary>Where the stock grpc-js peers live (tests/interop) and whether they can run: node on PATH and node_modules installed by tests/run.sh.</summary>
internal static class NodeInterop
{
    private static readonly Lazy<(string? Node, string? Directory, string? Problem)> Probe = new(Locate);

    /// <summary>True when CI=true: then a missing node or node_modules fails the interop tests instead of skipping them.</summary>
    public static bool InCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    /// <summary>Why the peers cannot run, or null when they can.</summary>
    public static string? Problem => Probe.Value.Problem;

    /// <summary>The node executable.</summary>
    public static string Node => Probe.Value.Node ?? throw new InvalidOperationException(Problem);

    /// <summary>tests/interop.</summary>
    public static string Directory => Probe.Value.Directory ?? throw new InvalidOperationException(Problem);

    /// <summary>Fails with the reason when the peers cannot run (the tests only get here unskipped, i.e. on CI or when everything is present).</summary>
    public static void EnsureAvailable()
    {
        if (Problem is not null)
        {
            throw new InvalidOperationException($"grpc-js interop cannot run: {Problem}");
        }
    }

    private static (string?, string?, string?) Locate()
    {
        var directory = FindInteropDirectory();
        if (directory is null)
        {
            return (null, null, $"tests/interop/package.json not found above {AppContext.BaseDirectory}");
        }

        var wanted = Environment.GetEnvironmentVariable("MF_NODE") ?? "node";
        var node = FindOnPath(wanted);
        if (node is null)
        {
            return (null, directory, $"`{wanted}` is not found (MF_NODE or PATH; tests/run.sh installs nodejs and npm with apt-get, then runs `npm ci` in tests/interop)");
        }

        foreach (var package in new[] { "@grpc/grpc-js", "@grpc/proto-loader", "@grpc/reflection", "grpc-health-check", "grpc-js-reflection-client" })
        {
            if (!File.Exists(Path.Combine(directory, "node_modules", package, "package.json")))
            {
                return (node, directory, $"{Path.Combine(directory, "node_modules", package)} is missing: run `npm ci` in {directory} (tests/run.sh does)");
            }
        }

        return (node, directory, null);
    }

    private static string? FindInteropDirectory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "tests", "interop");
            if (File.Exists(Path.Combine(candidate, "package.json")))
            {
                return candidate;
            }
        }

        return null;
    }

    private static string? FindOnPath(string name)
    {
        if (Path.IsPathRooted(name))
        {
            return File.Exists(name) ? name : null;
        }

        var path = Environment.GetEnvironmentVariable("PATH") ?? string.Empty;
        foreach (var dir in path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }
}

/// <summary>A fact that needs the grpc-js peers: skipped LOUDLY when they are missing outside CI; on CI (CI=true) it runs and fails with the reason.</summary>
internal sealed class NodeFactAttribute : FactAttribute
{
    public NodeFactAttribute()
    {
        if (NodeInterop.Problem is { } problem && !NodeInterop.InCi)
        {
            Skip = $"!!! SKIPPED: grpc-js interop peers unavailable ({problem}); on CI (CI=true) this test FAILS instead !!!";
        }
    }
}

/// <summary>A theory that needs the grpc-js peers; same skip rule as <see cref="NodeFactAttribute"/>.</summary>
internal sealed class NodeTheoryAttribute : TheoryAttribute
{
    public NodeTheoryAttribute()
    {
        if (NodeInterop.Problem is { } problem && !NodeInterop.InCi)
        {
            Skip = $"!!! SKIPPED: grpc-js interop peers unavailable ({problem}); on CI (CI=true) this test FAILS instead !!!";
        }
    }
}
