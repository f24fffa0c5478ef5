using Microsoft.Extensions.Logging;

namespace MigrationFabric.Rpc.Server;

/// <summary>Source-generated log messages of the server side.</summary>
internal static partial class ServerLog
{
    [LoggerMessage(1, LogLevel.Error, "Handler of {Method} threw; the call ends with UNKNOWN.")]
    public static partial void HandlerFailed(ILogger logger, Exception exception, string method);

    [LoggerMessage(3, LogLevel.Debug, "Could not send status {Code} of {Method}.")]
    public static partial void FinishFailed(ILogger logger, Exception exception, string method, StatusCode code);

    [LoggerMessage(2, LogLevel.Debug, "Rejected {Path}: {Reason}")]
    public static partial void Rejected(ILogger logger, string path, string reason);
}
