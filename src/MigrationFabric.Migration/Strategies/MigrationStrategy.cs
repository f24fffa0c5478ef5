using System.Diagnostics;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.Reporting;
using MigrationFabric.Migration.Telemetry;
using MigrationFabric.Migration.Verification;

namespace MigrationFabric.Migration.Strategies;

/// <summary>A way of moving a running VM to another agent; run at the source, against a destination that accepted the migration.</summary>
/// <remarks>
/// Before switch-over, failure, deadline or cancellation puts the source back as it was (vCPUs running,
/// throttle restored) and tells the destination to discard its copy. After switch-over the VM runs at the
/// destination and the migration is carried through (cancellation no longer applies); the integrity check
/// ends every migration.
/// </remarks>
public abstract class MigrationStrategy
{
    private protected MigrationStrategy(MigrationOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        BaseOptions = options;
    }

    /// <summary>"pre-copy", "post-copy" or "hybrid".</summary>
    public abstract string Name { get; }

    private protected MigrationOptions BaseOptions { get; }

    private protected virtual bool NeedsLocalPages => false;

    /// <summary>Migrates <paramref name="job"/>'s VM; returns the verified report or throws (see the remarks for the state left behind).</summary>
    /// <exception cref="MigrationFailedException">Failed before switch-over; the VM runs at the source.</exception>
    /// <exception cref="MigrationDeadlineExceededException">The deadline passed before switch-over; the VM runs at the source.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired before switch-over; the VM runs at the source.</exception>
    /// <exception cref="MigrationIntegrityException">The destination's memory differs from the source's at switch-over.</exception>
    public async Task<MigrationReport> RunAsync(MigrationJob job, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(job);
        job.Validate(NeedsLocalPages);
        var options = BaseOptions;
        using var deadline = new CancellationTokenSource(options.Deadline, options.TimeProvider);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        var token = linked.Token;
        MigrationSession? session = MigrationSession.Create(job, options, Name);
        try
        {
            await session.OpenStreamsAsync(token).ConfigureAwait(false);
            await BeforeSwitchOverAsync(session, token).ConfigureAwait(false);
            // The VM runs at the destination now: only the end of the process stops what follows.
            await AfterSwitchOverAsync(session, CancellationToken.None).ConfigureAwait(false);
            await VerifyAsync(session, CancellationToken.None).ConfigureAwait(false);
            try
            {
                await session.Streams.CloseAsync(CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception e) when (e is Rpc.RpcException or IOException or OperationCanceledException)
            {
                // Verified already: a stream that does not close cleanly changes nothing about the VM.
                session.Activity?.AddEvent(new ActivityEvent("streams did not close cleanly", tags: new ActivityTagsCollection { ["error"] = e.Message }));
            }
            session.Report(MigrationPhase.Completed);
            var report = CompleteReport(session, session.BuildReport());
            MigrationTelemetry.BytesSent.Add(report.BytesSent, new KeyValuePair<string, object?>("strategy", Name));
            MigrationTelemetry.PagesSent.Add(report.PagesSent, new KeyValuePair<string, object?>("strategy", Name));
            Count("completed");
            session.Activity?.SetTag("downtime.ms", report.Downtime.TotalMilliseconds).SetTag("bytes", report.BytesSent).SetStatus(ActivityStatusCode.Ok);
            return report;
        }
        catch (Exception e) when (session is null || !session.SwitchedOver)
        {
            string phase = session?.Phase.ToString() ?? nameof(MigrationPhase.Setup);
            string reason = deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested ? "deadline passed"
                : cancellationToken.IsCancellationRequested ? "cancelled" : e.Message;
            if (session is not null)
            {
                await session.RollbackAsync(reason).ConfigureAwait(false);
                session.Report(MigrationPhase.Failed);
                session.Activity?.SetStatus(ActivityStatusCode.Error, reason);
            }
            Count(cancellationToken.IsCancellationRequested ? "cancelled" : "failed");
            if (cancellationToken.IsCancellationRequested) throw new OperationCanceledException($"migration {job.MigrationId} was cancelled in {phase}; the VM keeps running at the source.", e, cancellationToken);
            if (deadline.IsCancellationRequested)
                throw new MigrationDeadlineExceededException(job.MigrationId, phase, options.Deadline,
                    $"{session?.Rounds.Count ?? 0} rounds, {session?.RemainingPages ?? 0} pages still dirty, throttle {job.Mmu.Throttle:0.00} (max {session?.MaxThrottle ?? 0:0.00})");
            throw new MigrationFailedException(job.MigrationId, phase, Describe(e), e);
        }
        catch (Exception e)
        {
            session!.Report(MigrationPhase.Failed);
            session.Activity?.SetStatus(ActivityStatusCode.Error, e.Message);
            Count("failed");
            throw;
        }
        finally
        {
            if (session is not null) await session.DisposeAsync().ConfigureAwait(false);
        }
    }

    private void Count(string outcome) => MigrationTelemetry.Migrations.Add(1,
        new KeyValuePair<string, object?>("strategy", Name), new KeyValuePair<string, object?>("outcome", outcome));

    private static string Describe(Exception e) => e switch
    {
        Rpc.RpcException rpc when rpc.StatusCode == Rpc.StatusCode.Unavailable => $"the destination is unavailable ({rpc.Status.Detail}).",
        Rpc.RpcException rpc => $"the destination answered {rpc.StatusCode}: {rpc.Status.Detail}",
        IOException io => $"a page stream broke: {io.Message}",
        _ => e.Message,
    };

    private protected abstract Task BeforeSwitchOverAsync(MigrationSession session, CancellationToken cancellationToken);

    /// <summary>The integrity check; a strategy whose pages end up on several hosts checks each.</summary>
    private protected virtual Task VerifyAsync(MigrationSession session, CancellationToken cancellationToken) => IntegrityCheck.RunAsync(session, cancellationToken);

    /// <summary>Adds what only this strategy knows (e.g. bytes to further destinations) to the report.</summary>
    private protected virtual MigrationReport CompleteReport(MigrationSession session, MigrationReport report) => report;

    private protected virtual Task AfterSwitchOverAsync(MigrationSession session, CancellationToken cancellationToken) => Task.CompletedTask;
}
