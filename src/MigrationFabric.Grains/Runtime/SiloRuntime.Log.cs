using Microsoft.Extensions.Logging;
using MigrationFabric.Grains.Membership;

namespace MigrationFabric.Grains.Runtime;

/// <summary>Source-generated log messages of the silo runtime.</summary>
internal sealed partial class SiloLog(ILogger logger)
{
    public void ActivationFailed(GrainId id, Exception e) => LogActivationFailed(logger, id, e);
    public void DeactivationFailed(GrainId id, Exception e) => LogDeactivationFailed(logger, id, e);
    public void UnregisterFailed(GrainId id, Exception e) => LogUnregisterFailed(logger, id, e);
    public void ReportFailed(SiloAddress owner, long version, Exception e) => LogReportFailed(logger, owner, version, e);
    public void DeactivationTimedOut(int count, TimeSpan timeout) => LogDeactivationTimedOut(logger, count, timeout);
    public void ViewChanged(SiloAddress self, long version, int active) => LogViewChanged(logger, self, version, active);
    public void CollectorFailed(Exception e) => LogCollectorFailed(logger, e);

    [LoggerMessage(1, LogLevel.Warning, "Activation of grain {Grain} failed")]
    private static partial void LogActivationFailed(ILogger logger, GrainId grain, Exception e);

    [LoggerMessage(2, LogLevel.Warning, "OnDeactivateAsync of grain {Grain} threw")]
    private static partial void LogDeactivationFailed(ILogger logger, GrainId grain, Exception e);

    [LoggerMessage(3, LogLevel.Debug, "Unregistering grain {Grain} from the directory failed")]
    private static partial void LogUnregisterFailed(ILogger logger, GrainId grain, Exception e);

    [LoggerMessage(4, LogLevel.Warning, "Reporting activations to directory owner {Owner} for ring version {Version} failed")]
    private static partial void LogReportFailed(ILogger logger, SiloAddress owner, long version, Exception e);

    [LoggerMessage(5, LogLevel.Warning, "{Count} activation(s) did not deactivate within {Timeout}")]
    private static partial void LogDeactivationTimedOut(ILogger logger, int count, TimeSpan timeout);

    [LoggerMessage(6, LogLevel.Information, "Silo {Silo} moved to membership version {Version} with {Active} active silo(s)")]
    private static partial void LogViewChanged(ILogger logger, SiloAddress silo, long version, int active);

    [LoggerMessage(7, LogLevel.Warning, "Idle collection failed")]
    private static partial void LogCollectorFailed(ILogger logger, Exception e);
}
