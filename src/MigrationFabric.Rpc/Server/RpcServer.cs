using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using MigrationFabric.Rpc.Health;
using MigrationFabric.Rpc.Reflection;
using ServingStatus = MigrationFabric.Rpc.Health.V1.HealthCheckResponse.Types.ServingStatus;

namespace MigrationFabric.Rpc.Server;

/// <summary>A gRPC server on Kestrel: add service definitions, start, read back the bound port, stop.</summary>
public sealed class RpcServer : IAsyncDisposable
{
    private readonly List<RpcServiceDefinition> _services = new();
    private readonly ILoggerFactory _loggerFactory;
    private WebApplication? _app;
    private int _state; // 0 new, 1 started, 2 stopped

    /// <summary>Creates a server; options are validated at <see cref="StartAsync"/>.</summary>
    public RpcServer(RpcServerOptions? options = null, ILoggerFactory? loggerFactory = null)
    {
        Options = options ?? new RpcServerOptions();
        _loggerFactory = loggerFactory ?? NullLoggerFactory.Instance;
    }

    /// <summary>The options the server runs with.</summary>
    public RpcServerOptions Options { get; }

    /// <summary>The server's health state (served as grpc.health.v1.Health when <see cref="RpcServerOptions.EnableHealth"/>).</summary>
    public HealthService Health { get; } = new();

    /// <summary>The bound port; valid after <see cref="StartAsync"/>.</summary>
    public int Port { get; private set; }

    /// <summary>The address clients use, e.g. http://127.0.0.1:50051; valid after <see cref="StartAsync"/>.</summary>
    public Uri Address { get; private set; } = new("http://127.0.0.1:0");

    /// <summary>The services added so far (not counting health and reflection).</summary>
    public IReadOnlyList<RpcServiceDefinition> Services => _services;

    /// <summary>Adds a service; only before <see cref="StartAsync"/>.</summary>
    public RpcServer AddService(RpcServiceDefinition service)
    {
        ArgumentNullException.ThrowIfNull(service);
        if (_state != 0)
        {
            throw new InvalidOperationException("Services must be added before the server starts.");
        }

        _services.Add(service);
        return this;
    }

    /// <summary>Validates the options, binds the listener and starts serving.</summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.CompareExchange(ref _state, 1, 0) != 0)
        {
            throw new InvalidOperationException("The server was already started.");
        }

        Options.Validate();
        var all = new List<RpcServiceDefinition>(_services);
        if (Options.EnableHealth)
        {
            all.Add(Health.CreateDefinition());
        }

        if (Options.EnableReflection)
        {
            // Reflection lists itself too, as grpc servers do.
            var names = new List<RpcServiceDefinition>(all);
            var probe = new ReflectionService(Array.Empty<RpcServiceDefinition>());
            names.Add(probe.CreateV1Definition());
            names.Add(probe.CreateV1AlphaDefinition());
            var reflection = new ReflectionService(names);
            all.Add(reflection.CreateV1Definition());
            all.Add(reflection.CreateV1AlphaDefinition());
        }

        var dispatcher = new RpcDispatcher(all, Options, _loggerFactory.CreateLogger("MigrationFabric.Rpc.Server"));

        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.Services.AddSingleton(_loggerFactory);
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(5));
        builder.WebHost.UseKestrelCore();
        // Kestrel's default waits for each receive with a zero-byte read before renting a 4 KiB block, which doubles the
        // receive calls on a connection that is never idle (a page stream moves 256 blocks per MiB). One block held per
        // idle connection is the price.
        builder.Services.Configure<Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets.SocketTransportOptions>(o => o.WaitForDataBeforeAllocatingBuffer = false);
        if (Options.Tls is not null)
        {
            builder.WebHost.UseKestrelHttpsConfiguration();
        }

        builder.WebHost.ConfigureKestrel(ConfigureKestrel);
        var app = builder.Build();
        app.Run(dispatcher.HandleAsync);
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        _app = app;

        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault()
            ?? throw new InvalidOperationException("Kestrel reported no bound address.");
        var bound = new Uri(address);
        Port = bound.Port;
        var host = Options.ListenAddress.Equals(System.Net.IPAddress.Any) ? "127.0.0.1"
            : Options.ListenAddress.Equals(System.Net.IPAddress.IPv6Any) ? "[::1]"
            : bound.Host;
        Address = new Uri($"{(Options.Tls is null ? "http" : "https")}://{host}:{Port}");

        Health.SetStatus(HealthService.Server, ServingStatus.Serving);
        foreach (var service in all)
        {
            Health.SetStatus(service.Name, ServingStatus.Serving);
        }
    }

    /// <summary>Marks everything NOT_SERVING, ends health watches, and stops; in-flight calls get up to 5 s, then are cancelled.</summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _state, 2) != 1)
        {
            return;
        }

        Health.Shutdown();
        if (_app is not null)
        {
            await _app.StopAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        if (_app is not null)
        {
            await _app.DisposeAsync().ConfigureAwait(false);
            _app = null;
        }
    }

    private void ConfigureKestrel(Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions kestrel)
    {
        kestrel.AddServerHeader = false;
        var limits = kestrel.Limits;
        limits.MaxRequestBodySize = null; // Streams are unbounded; message size is checked per frame.
        limits.MinRequestBodyDataRate = null; // Idle streams (watches, paused migrations) are normal.
        limits.MinResponseDataRate = null;
        limits.MaxResponseBufferSize = Options.MaxResponseBufferSize;
        limits.Http2.InitialConnectionWindowSize = Options.InitialConnectionWindowSize;
        limits.Http2.InitialStreamWindowSize = Options.InitialStreamWindowSize;
        limits.Http2.MaxFrameSize = Options.MaxFrameSize;
        limits.Http2.MaxStreamsPerConnection = Options.MaxConcurrentStreams;
        if (Options.KeepAlivePingDelay is { } ping)
        {
            limits.Http2.KeepAlivePingDelay = ping;
        }

        kestrel.Listen(Options.ListenAddress, Options.Port, listen =>
        {
            listen.Protocols = HttpProtocols.Http2;
            if (Options.Tls is { } tls)
            {
                listen.UseHttps(new HttpsConnectionAdapterOptions
                {
                    ServerCertificate = tls.ServerCertificate,
                    ClientCertificateMode = tls.RequireClientCertificate ? ClientCertificateMode.RequireCertificate : ClientCertificateMode.AllowCertificate,
                    ClientCertificateValidation = tls.ClientCertificateValidation is null ? null : (cert, chain, errors) => tls.ClientCertificateValidation(cert, chain, errors),
                });
            }
        });
    }
}
