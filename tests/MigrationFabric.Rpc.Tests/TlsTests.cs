using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MigrationFabric.Rpc.Client;
using MigrationFabric.Rpc.Server;
using MigrationFabric.Tests.Echo.V1;

namespace MigrationFabric.Rpc.Tests;

/// <summary>Mutual TLS with certificates made at test time: a test CA signs the server and the client certificate.</summary>
public sealed class TlsTests : IAsyncLifetime
{
    private readonly X509Certificate2 _ca;
    private readonly X509Certificate2 _serverCertificate;
    private readonly X509Certificate2 _clientCertificate;
    private RpcTestServer _server = null!;

    public TlsTests()
    {
        _ca = CreateCa("CN=MigrationFabric Test CA");
        _serverCertificate = Issue(_ca, "CN=localhost", serverAuth: true);
        _clientCertificate = Issue(_ca, "CN=test-client", serverAuth: false);
    }

    public async Task InitializeAsync()
    {
        var options = new RpcServerOptions
        {
            Tls = new RpcServerTlsOptions
            {
                ServerCertificate = _serverCertificate,
                RequireClientCertificate = true,
                ClientCertificateValidation = (certificate, _, _) => TrustedByCa(certificate),
            },
        };
        _server = await RpcTestServer.StartAsync(options, ClientOptions(_clientCertificate), TestServices.CreateProbe());
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        _ca.Dispose();
        _serverCertificate.Dispose();
        _clientCertificate.Dispose();
    }

    [Fact]
    public async Task A_client_with_a_certificate_from_the_CA_is_served_and_seen_by_the_handler()
    {
        Assert.Equal("https", _server.Server.Address.Scheme);
        var reply = await _server.Channel.AsyncUnaryCall(TestServices.Probe, new EchoRequest { Message = "cert" });
        Assert.Equal("CN=test-client", reply.Message);

        using var call = _server.Channel.AsyncDuplexStreamingCall(EchoService.Chat);
        await call.RequestStream.WriteAsync(new EchoRequest { Message = "over tls" });
        Assert.True(await call.ResponseStream.MoveNext());
        Assert.Equal("over tls", call.ResponseStream.Current.Message);
        await call.RequestStream.CompleteAsync();
        Assert.False(await call.ResponseStream.MoveNext());
    }

    [Fact]
    public async Task A_client_without_a_certificate_is_rejected()
    {
        using var channel = _server.CreateChannel(ClientOptions(null));
        var error = await Assert.ThrowsAsync<RpcException>(() => channel.AsyncUnaryCall(EchoService.Say, new EchoRequest { Message = "x" }).ResponseAsync);
        Assert.Equal(StatusCode.Unavailable, error.StatusCode);
    }

    [Fact]
    public async Task A_client_with_a_certificate_from_another_CA_is_rejected()
    {
        using var otherCa = CreateCa("CN=Other CA");
        using var stranger = Issue(otherCa, "CN=stranger", serverAuth: false);
        using var channel = _server.CreateChannel(ClientOptions(stranger));
        var error = await Assert.ThrowsAsync<RpcException>(() => channel.AsyncUnaryCall(EchoService.Say, new EchoRequest { Message = "x" }).ResponseAsync);
        Assert.Equal(StatusCode.Unavailable, error.StatusCode);
    }

    [Fact]
    public async Task An_h2c_client_cannot_talk_to_the_TLS_port()
    {
        using var channel = RpcChannel.ForAddress($"http://127.0.0.1:{_server.Server.Port}", new RpcChannelOptions { ConnectTimeout = TimeSpan.FromSeconds(5) });
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var error = await Assert.ThrowsAsync<RpcException>(() => channel.AsyncUnaryCall(EchoService.Say, new EchoRequest(), new CallOptions(CancellationToken: cts.Token)).ResponseAsync);
        Assert.NotEqual(StatusCode.OK, error.StatusCode);
    }

    private RpcChannelOptions ClientOptions(X509Certificate2? certificate) => new()
    {
        ClientCertificates = certificate is null ? null : new X509CertificateCollection { certificate },
        ServerCertificateValidation = (_, certificate, _, _) => certificate is not null && TrustedByCa(X509CertificateLoader.LoadCertificate(certificate.GetRawCertData())),
    };

    private bool TrustedByCa(X509Certificate2 certificate)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(_ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(certificate);
    }

    private static X509Certificate2 CreateCa(string subject)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        using var created = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(1));
        return X509CertificateLoader.LoadPkcs12(created.Export(X509ContentType.Pkcs12), null);
    }

    private static X509Certificate2 Issue(X509Certificate2 ca, string subject, bool serverAuth)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
            new OidCollection { new Oid(serverAuth ? "1.3.6.1.5.5.7.3.1" : "1.3.6.1.5.5.7.3.2") }, false));
        if (serverAuth)
        {
            var names = new SubjectAlternativeNameBuilder();
            names.AddIpAddress(IPAddress.Loopback);
            names.AddDnsName("localhost");
            request.CertificateExtensions.Add(names.Build());
        }

        var serial = RandomNumberGenerator.GetBytes(8);
        using var issued = request.Create(ca, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddMinutes(50), serial);
        using var withKey = issued.CopyWithPrivateKey(key);
        return X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), null);
    }
}
