using System.Diagnostics;
using System.Text;

namespace MigrationFabric.Rpc.Tests.Interop;

/// <summary>The grpc-js Echo server (tests/interop/server.js) as a child process; disposing ends it.</summary>
public sealed class GrpcJsServer : IAsyncDisposable
{
    private readonly Process process;
    private readonly StringBuilder stderr = new();

    private GrpcJsServer(Process process, int port)
    {
        this.process = process;
        Port = port;
    }

    /// <summary>The loopback port it listens on.</summary>
    public int Port { get; }

    /// <summary>What the server wrote to stderr so far (for failure messages).</summary>
    public string Stderr
    {
        get
        {
            lock (stderr)
            {
                return stderr.ToString();
            }
        }
    }

    public static async Task<GrpcJsServer> StartAsync(TimeSpan timeout)
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
        info.ArgumentList.Add(Path.Combine(NodeInterop.Directory, "server.js"));
        var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {NodeInterop.Node}");
        var errors = new StringBuilder();
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (errors)
                {
                    errors.AppendLine(e.Data);
                }
            }
        };
        process.BeginErrorReadLine();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            while (true)
            {
                var line = await process.StandardOutput.ReadLineAsync(cts.Token)
                    ?? throw new InvalidOperationException($"grpc-js server exited before listening (exit code {(process.HasExited ? process.ExitCode : -1)}): {errors}");
                if (line.StartsWith("LISTENING ", StringComparison.Ordinal))
                {
                    var server = new GrpcJsServer(process, int.Parse(line["LISTENING ".Length..], System.Globalization.CultureInfo.InvariantCulture));
                    lock (errors)
                    {
                        server.stderr.Append(errors);
                    }

                    process.ErrorDataReceived += (_, e) =>
                    {
                        if (e.Data is not null)
                        {
                            lock (server.stderr)
                            {
                                server.stderr.AppendLine(e.Data);
                            }
                        }
                    };
                    return server;
                }
            }
        }
        catch
        {
            process.Kill(entireProcessTree: true);
            process.Dispose();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            // Closing stdin asks server.js to shut down; kill it if it does not.
            process.StandardInput.Close();
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
        }
        finally
        {
            process.Dispose();
        }
    }
}
