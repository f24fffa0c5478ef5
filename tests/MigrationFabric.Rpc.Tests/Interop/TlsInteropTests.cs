using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MigrationFabric.Rpc.Server;

namespace MigrationFabric.Rpc.Tests.Interop;

/// <summary>A test CA, a server certificate for 127.0.0.1/localhost and a client certificate (PEM files for node), and our server requiring client certificates from that CA.</summary>
public sealed class TlsInteropFixture : IAsyncLifetime
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "mf-tls-interop-" + Guid.NewGuid().ToString("N"));
    private X509Certificate2? _ca;
    private X509Certificate2? _serverCertificate;
    private RpcTestServer? _server;

    public string Target => $"127.0.0.1:{_server!.Server.Port}";

    public string File(string name) => Path.Combine(_directory, name);

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(_directory);
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest("CN=MigrationFabric interop test CA", caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        var now = DateTimeOffset.UtcNow;
        _ca = caRequest.CreateSelfSigned(now.AddMinutes(-5), now.AddDays(2));

        _serverCertificate = Issue("CN=localhost", server: true, now);
        using var client = Issue("CN=interop client", server: false, now);
        await System.IO.File.WriteAllTextAsync(File("ca.pem"), _ca.ExportCertificatePem());
        await System.IO.File.WriteAllTextAsync(File("client.pem"), client.ExportCertificatePem());
        await System.IO.File.WriteAllTextAsync(File("client-key.pem"), client.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());

        var ca = _ca;
        _server = await RpcTestServer.StartAsync(new RpcServerOptions
        {
            Tls = new RpcServerTlsOptions
            {
                ServerCertificate = _serverCertificate,
                RequireClientCertificate = true,
                ClientCertificateValidation = (certificate, _, _) => ChainsTo(certificate, ca),
            },
        });
    }

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }

        _serverCertificate?.Dispose();
        _ca?.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    private static bool ChainsTo(X509Certificate2 certificate, X509Certificate2 ca)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(certificate);
    }

    private X509Certificate2 Issue(string subject, bool server, DateTimeOffset now)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
            [server ? new Oid("1.3.6.1.5.5.7.3.1") : new Oid("1.3.6.1.5.5.7.3.2")], false));
        if (server)
        {
            var names = new SubjectAlternativeNameBuilder();
            names.AddDnsName("localhost");
            names.AddIpAddress(IPAddress.Loopback);
            request.CertificateExtensions.Add(names.Build());
        }

        var serial = RandomNumberGenerator.GetBytes(16);
        using var issued = request.Create(_ca!, now.AddMinutes(-5), now.AddDays(1), serial);
        using var withKey = issued.CopyWithPrivateKey(key);

        // A PKCS#12 round trip gives SslStream a certificate whose key it can use on every platform.
        return X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), null);
    }
}

/// <summary>grpc-js over TLS (tests/interop/tls.js) against our server requiring client certificates from a test CA.</summary>
public sealed class TlsInteropTests(TlsInteropFixture fixture) : IClassFixture<TlsInteropFixture>
{
    public static readonly string[] Cases = ["mutual_tls", "no_client_certificate_is_refused", "untrusted_server_is_refused"];

    public static TheoryData<string> CaseNames()
    {
        var data = new TheoryData<string>();
        foreach (var name in Cases)
        {
            data.Add(name);
        }

        return data;
    }

    [NodeTheory]
    [MemberData(nameof(CaseNames))]
    public async Task Grpc_js_over_tls_passes(string name)
    {
        var outcome = await NodeScript.RunAsync("tls.js",
        [
            "--target", fixture.Target,
            "--ca", fixture.File("ca.pem"),
            "--cert", fixture.File("client.pem"),
            "--key", fixture.File("client-key.pem"),
            "--case", name,
        ], TimeSpan.FromMinutes(1));
        NodeScript.AssertPassed(outcome, name);
    }

    [NodeFact]
    public async Task The_case_list_matches_tls_js()
    {
        var offered = await NodeScript.ListAsync("tls.js");
        Assert.Equal(offered.Order(StringComparer.Ordinal), Cases.Order(StringComparer.Ordinal));
    }
}
