using Microsoft.Extensions.Logging;

namespace MigrationFabric.Grains.Membership;

public sealed partial class MembershipService
{
    [LoggerMessage(1, LogLevel.Information, "Silo {Silo} joined the membership table as Joining")]
    private static partial void LogJoined(ILogger logger, SiloAddress silo);

    [LoggerMessage(2, LogLevel.Information, "Silo {Silo} is now {Status}")]
    private static partial void LogStatus(ILogger logger, SiloAddress silo, SiloStatus status);

    [LoggerMessage(3, LogLevel.Information, "Silo {Silo} left the cluster gracefully")]
    private static partial void LogLeft(ILogger logger, SiloAddress silo);

    [LoggerMessage(4, LogLevel.Warning, "Silo {Target} declared dead by {Voter} ({Reason})")]
    private static partial void LogDeclaredDead(ILogger logger, SiloAddress target, SiloAddress voter, string reason);

    [LoggerMessage(5, LogLevel.Warning, "Silo {Voter} suspects {Target}: {Votes}/{Required} votes")]
    private static partial void LogVoted(ILogger logger, SiloAddress voter, SiloAddress target, int votes, int required);

    [LoggerMessage(6, LogLevel.Debug, "Silo {Prober} missed probe {Missed} of {Target}")]
    private static partial void LogProbeMissed(ILogger logger, SiloAddress prober, SiloAddress target, int missed);

    [LoggerMessage(7, LogLevel.Error, "Silo {Silo} found itself declared dead; stopping membership (the silo must stop)")]
    private static partial void LogSelfDead(ILogger logger, SiloAddress silo);

    [LoggerMessage(8, LogLevel.Warning, "Silo {Silo}: membership {Operation} failed")]
    private static partial void LogTableFailed(ILogger logger, Exception exception, SiloAddress silo, string operation);

    [LoggerMessage(9, LogLevel.Error, "Silo {Silo}: a membership Changed handler threw")]
    private static partial void LogHandlerFailed(ILogger logger, Exception exception, SiloAddress silo);
}
