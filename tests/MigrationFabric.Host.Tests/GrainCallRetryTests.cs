namespace MigrationFabric.Host.Tests;

using MigrationFabric.Grains;
using MigrationFabric.Host.Agent;
using MigrationFabric.Host.Errors;

/// <summary>Records that must land (a lost sub-host, a stopped vCPU, a migration's ending) are retried while a silo dies, however the runtime says so.</summary>
public sealed class GrainCallRetryTests
{
    /// <summary>As another silo says a call failed because a silo is unavailable or a directory entry cannot be registered.</summary>
    private static RemoteGrainException Remote<T>(string message) where T : Exception =>
        new(typeof(T).FullName!, message, null);

    [Fact]
    public async Task A_routing_failure_reported_by_another_silo_is_retried_until_the_call_lands()
    {
        // What the split main's loss report met under load (the VM grain's directory entry lived on the dead sub-host):
        // it was not retried, so the loss never reached the VM's grain.
        int calls = 0;
        int result = await GrainCallRetry.RunAsync(() =>
        {
            if (++calls <= 2)
                throw Remote<GrainRoutingException>("Grain IVmGrain/sf-after could not be registered in the grain directory: Silo 127.0.0.1:36173 is unavailable");
            return Task.FromResult(42);
        }, TimeSpan.FromSeconds(60));
        Assert.Equal((42, 3), (result, calls));
    }

    [Theory]
    [InlineData(typeof(SiloUnavailableException))]
    [InlineData(typeof(GrainCallTimeoutException))]
    [InlineData(typeof(GrainRoutingException))]
    public void The_runtimes_transient_failures_are_transient_here_and_when_another_silo_reports_them(Type type)
    {
        Assert.True(GrainCallRetry.IsTransient(new RemoteGrainException(type.FullName!, "gone", null)));
        if (type == typeof(GrainRoutingException)) Assert.True(GrainCallRetry.IsTransient(new GrainRoutingException("no silo")));
    }

    [Fact]
    public async Task A_grains_own_error_is_thrown_at_once()
    {
        int calls = 0;
        var e = await Assert.ThrowsAsync<RemoteGrainException>(() => GrainCallRetry.RunAsync(() =>
        {
            calls++;
            throw Remote<FabricException>("NotFound: VM 'x' does not exist.");
        }, TimeSpan.FromSeconds(60)));
        Assert.Equal(1, calls);
        Assert.Contains("does not exist", e.RemoteMessage);
        Assert.False(GrainCallRetry.IsTransient(new InvalidOperationException("a bug")));
        Assert.False(GrainCallRetry.IsTransient(Remote<InvalidOperationException>("a bug")));
    }

    [Fact]
    public async Task A_transient_failure_past_the_patience_is_thrown_not_swallowed()
    {
        int calls = 0;
        await Assert.ThrowsAsync<GrainRoutingException>(() => GrainCallRetry.RunAsync(() =>
        {
            calls++;
            throw new GrainRoutingException("no active silo");
        }, TimeSpan.Zero));
        Assert.Equal(1, calls);
    }
}
