using MigrationFabric.Grains.Membership;
using MigrationFabric.Rpc;
using MigrationFabric.Rpc.Server;
using Xunit;

namespace MigrationFabric.Grains.Tests.Membership;

/// <summary>Probing real silo endpoints (RpcServer on loopback) with grpc.health.v1 Check, and liveness over it.</summary>
public sealed class GrpcHealthProbeTests : IAsyncLifetime
{
    private readonly List<RpcServer> _servers = [];
    private readonly GrpcHealthProbe _probe = new();
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromSeconds(30));

    private async Task<(RpcServer Server, SiloAddress Silo)> StartSiloServerAsync()
    {
        var server = new RpcServer(new RpcServerOptions { Port = 0 });
        _servers.Add(server);
        await server.StartAsync(_timeout.Token);
        var silo = SiloAddress.NewGeneration("127.0.0.1", server.Port);
        GrpcHealthProbe.AnswerProbes(server.Health, silo);
        return (server, silo);
    }

    [Fact]
    public async Task A_serving_silo_answers_its_own_identity_only()
    {
        var (server, silo) = await StartSiloServerAsync();
        await _probe.ProbeAsync(silo, _timeout.Token);

        var otherGeneration = new SiloAddress(silo.Host, silo.Port, silo.Generation + 1);
        var e = await Assert.ThrowsAsync<RpcException>(() => _probe.ProbeAsync(otherGeneration, _timeout.Token));
        Assert.Equal(StatusCode.NotFound, e.StatusCode);

        GrpcHealthProbe.StopAnsweringProbes(server.Health, silo);
        await Assert.ThrowsAsync<RpcException>(() => _probe.ProbeAsync(silo, _timeout.Token));
    }

    [Fact]
    public async Task A_not_serving_silo_fails_the_probe_with_its_status()
    {
        var (server, silo) = await StartSiloServerAsync();
        server.Health.SetStatus(GrpcHealthProbe.ServiceName(silo), MigrationFabric.Rpc.Health.V1.HealthCheckResponse.Types.ServingStatus.NotServing);
        var e = await Assert.ThrowsAsync<SiloProbeFailedException>(() => _probe.ProbeAsync(silo, _timeout.Token));
        Assert.Contains("NotServing", e.Message);
        Assert.Equal(silo, e.Silo);
    }

    [Fact]
    public async Task A_stopped_server_fails_the_probe()
    {
        var (server, silo) = await StartSiloServerAsync();
        await _probe.ProbeAsync(silo, _timeout.Token);
        await server.StopAsync(_timeout.Token);
        await Assert.ThrowsAnyAsync<Exception>(() => _probe.ProbeAsync(silo, _timeout.Token));
    }

    [Fact]
    public void Only_http_and_https_are_accepted()
    {
        var e = Assert.Throws<ArgumentException>(() => new GrpcHealthProbe(scheme: "ftp"));
        Assert.Contains("ftp", e.Message);
    }

    [Fact]
    public async Task Three_silos_over_real_sockets_one_stops_serving_and_is_declared_dead()
    {
        var table = new InMemoryMembershipTable();
        var services = new List<MembershipService>();
        var silos = new List<(RpcServer Server, SiloAddress Silo)>();
        try
        {
            for (int i = 0; i < 3; i++)
            {
                var s = await StartSiloServerAsync();
                silos.Add(s);
                var service = new MembershipService(s.Silo, table, _probe, LivenessTests.FastOptions());
                services.Add(service);
                await service.StartAsync(_timeout.Token);
                await service.BecomeActiveAsync(_timeout.Token);
            }
            foreach (var s in services)
                await s.WaitForAsync(v => v.ActiveSilos.Count == 3, _timeout.Token);

            await silos[0].Server.StopAsync(_timeout.Token);
            await services[0].DisposeAsync();

            foreach (var s in services.Skip(1))
                await s.WaitForAsync(v => v.GetStatus(silos[0].Silo) == SiloStatus.Dead && v.ActiveSilos.Count == 2, _timeout.Token);
        }
        finally
        {
            foreach (var s in services)
                await s.DisposeAsync();
        }
    }

    /// <inheritdoc />
    public Task InitializeAsync() => Task.CompletedTask;

    /// <inheritdoc />
    public async Task DisposeAsync()
    {
        _probe.Dispose();
        foreach (var server in _servers)
            await server.DisposeAsync();
        _timeout.Dispose();
    }
}
