using System.Net;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Floodgate.Gateway.Tests.Traffic.Protos;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Floodgate.Gateway.Tests.Traffic;

/// <summary>
/// A gRPC service (<c>floodgate.test.Echo</c>) on real Kestrel on loopback, HTTP/2 only: in cleartext (h2c), or over TLS
/// with a certificate of a private CA (<see cref="TestCertificates"/>), asking for a client certificate of that CA when
/// told to. It records the server name (SNI) and the client certificate of the last TLS handshake.
/// </summary>
internal sealed class GrpcUpstream : IAsyncDisposable
{
    private readonly WebApplication _app;

    private GrpcUpstream(WebApplication app, HandshakeLog handshakes)
    {
        _app = app;
        Handshakes = handshakes;
        Address = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
    }

    public Uri Address { get; }

    /// <summary>The address without the trailing slash, with 127.0.0.1 (the certificate names it).</summary>
    public string Url => Address.ToString().TrimEnd('/');

    public HandshakeLog Handshakes { get; }

    /// <summary>Starts the service: h2c without <paramref name="tls"/>, TLS with it.</summary>
    public static async Task<GrpcUpstream> StartAsync(TestCertificates? tls = null, bool requireClientCertificate = false)
    {
        var handshakes = new HandshakeLog();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddGrpc();
        X509Certificate2? certificate = tls is null ? null : X509Certificate2.CreateFromPemFile(tls.ServerCertificate, tls.ServerKey);
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, o =>
        {
            o.Protocols = HttpProtocols.Http2;
            if (tls is not null)
            {
                var authority = X509CertificateLoader.LoadCertificateFromFile(tls.Authority);
                o.UseHttps(new HttpsConnectionAdapterOptions
                {
                    ServerCertificateSelector = (_, name) =>
                    {
                        handshakes.ServerName = name;
                        return certificate;
                    },
                    ClientCertificateMode = requireClientCertificate ? ClientCertificateMode.RequireCertificate : ClientCertificateMode.NoCertificate,
                    ClientCertificateValidation = (client, _, _) =>
                    {
                        handshakes.ClientSubject = client.Subject;
                        return ChainsTo(authority, client);
                    },
                });
            }
        }));
        var app = builder.Build();
        app.MapGrpcService<EchoService>();
        await app.StartAsync();
        return new GrpcUpstream(app, handshakes);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    /// <summary>Whether <paramref name="certificate"/> chains to <paramref name="authority"/> alone.</summary>
    public static bool ChainsTo(X509Certificate2 authority, X509Certificate2 certificate)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(authority);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(certificate);
    }

    /// <summary>A handler that trusts the servers whose certificates chain to <paramref name="tls"/>'s CA, for clients of an https gateway.</summary>
    public static SocketsHttpHandler TrustingHandler(TestCertificates tls)
    {
        var authority = X509CertificateLoader.LoadCertificateFromFile(tls.Authority);
        return new SocketsHttpHandler
        {
            UseProxy = false,
            SslOptions = new SslClientAuthenticationOptions
            {
                RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                    certificate is not null && ChainsTo(authority, X509CertificateLoader.LoadCertificate(certificate.GetRawCertData())),
            },
        };
    }

    /// <summary>What the last TLS handshake showed.</summary>
    internal sealed class HandshakeLog
    {
        public string? ServerName { get; set; }

        public string? ClientSubject { get; set; }
    }

    private sealed class EchoService : Echo.EchoBase
    {
        public override Task<EchoReply> Say(EchoRequest request, ServerCallContext context) =>
            Task.FromResult(new EchoReply { Text = "echo: " + request.Text });

        public override async Task Count(CountRequest request, IServerStreamWriter<EchoReply> responseStream, ServerCallContext context)
        {
            for (var i = 1; i <= request.Count; i++)
            {
                await responseStream.WriteAsync(new EchoReply { Text = i.ToString(System.Globalization.CultureInfo.InvariantCulture) }, context.CancellationToken);
            }
        }
    }
}
