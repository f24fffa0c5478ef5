namespace MigrationFabric.Host.Agent;

using MigrationFabric.Grains;

/// <summary>Retries a grain call that must land (a migration's ending, a lost sub-host, a stopped vCPU) for as long as it fails only because a silo just died.</summary>
/// <remarks>
/// Until membership declares a dead silo dead, calls to the grains it hosted (or whose directory entries it owned) fail;
/// then they reactivate elsewhere. Such a failure arrives as the runtime's own exception when this silo saw it, and as a
/// <see cref="RemoteGrainException"/> naming that exception's type when another silo saw it (e.g. an activation there could
/// not register in the dead silo's directory partition): both are transient. Anything else is the grain's answer and is
/// thrown at once.
/// </remarks>
public static class GrainCallRetry
{
    /// <summary>How long a call is retried by default: longer than membership takes to declare a dead silo with default options.</summary>
    public static readonly TimeSpan DefaultPatience = TimeSpan.FromMinutes(2);

    private static readonly TimeSpan FirstDelay = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan MaxDelay = TimeSpan.FromSeconds(2);

    private static readonly string[] TransientTypes =
    [
        typeof(SiloUnavailableException).FullName!,
        typeof(GrainCallTimeoutException).FullName!,
        typeof(GrainRoutingException).FullName!,
    ];

    /// <summary>Whether <paramref name="error"/> says only that a silo is unreachable or not yet declared dead, here or on the silo that answered.</summary>
    public static bool IsTransient(Exception error) => error switch
    {
        SiloUnavailableException or GrainCallTimeoutException or GrainRoutingException => true,
        RemoteGrainException remote => Array.IndexOf(TransientTypes, remote.RemoteType) >= 0,
        _ => false,
    };

    /// <summary>Calls <paramref name="call"/> until it succeeds, throws a non-transient error, or <paramref name="patience"/> (default <see cref="DefaultPatience"/>) has passed; then the last error is thrown.</summary>
    public static async Task<T> RunAsync<T>(Func<Task<T>> call, TimeSpan? patience = null)
    {
        ArgumentNullException.ThrowIfNull(call);
        var until = DateTime.UtcNow + (patience ?? DefaultPatience);
        for (var delay = FirstDelay; ; delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, MaxDelay.Ticks)))
        {
            try
            {
                return await call().ConfigureAwait(false);
            }
            catch (Exception e) when (IsTransient(e) && DateTime.UtcNow < until)
            {
                await Task.Delay(delay).ConfigureAwait(false);
            }
        }
    }

    /// <summary><see cref="RunAsync{T}"/> for a call without a result.</summary>
    public static Task RunAsync(Func<Task> call, TimeSpan? patience = null)
    {
        ArgumentNullException.ThrowIfNull(call);
        return RunAsync(async () => { await call().ConfigureAwait(false); return true; }, patience);
    }
}
