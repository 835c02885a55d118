using System.Net;
using System.Security.Authentication;
using Floodgate.Gateway.Cli;
using Floodgate.Gateway.Hosting;
using Floodgate.Gateway.Policy;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Yarp.ReverseProxy.Configuration;

namespace Floodgate.Gateway.Tests.Traffic;

/// <summary>
/// The traffic fields of routes, clusters and the <c>proxy</c> section: written straight onto YARP's own types, each
/// refused with file, line, column and field when wrong, and put in force by a reload.
/// </summary>
public sealed class TrafficPolicyTests : IDisposable
{
    private readonly TestCertificates _certificates = TestCertificates.Create();

    public void Dispose() => _certificates.Dispose();

    [Fact]
    public void Routes_and_clusters_carry_the_fields_on_YARP_s_own_types_and_the_proxy_section_fills_the_rest()
    {
        var policy = PolicyLoader.Parse($$"""
            proxy:
              max_request_body_size: 1GiB
              activity_timeout: 10m
              x_forwarded: set
            upstream: http://127.0.0.1:5000
            routes:
              - id: uploads
                path: /uploads/{**rest}
                cluster: files
                max_request_body_size: unlimited
                x_forwarded: append
                original_host: true
              - id: grpc
                path: /grpc/{**rest}
                destinations: [http://127.0.0.1:5001]
                http_version: h2c
                activity_timeout: 1h
            clusters:
              files:
                destinations: [https://127.0.0.1:5002]
                http_version: 2
                version_policy: exact
                tls:
                  ca: {{_certificates.Authority}}
                  client_cert: {{_certificates.ClientCertificate}}
                  client_key: {{_certificates.ClientKey}}
                  server_name: files.internal
                  protocols: [tls12, tls13]
            """, "p.yaml");

        var uploads = policy.Routes.Single(r => r.RouteId == "uploads");
        Assert.Equal(-1, uploads.MaxRequestBodySize);
        Assert.Equal("Append", Transform(uploads, "X-Forwarded"));
        Assert.Equal("True", Transform(uploads, "RequestHeaderOriginalHost"), ignoreCase: true);

        // Fields a route leaves out come from the proxy section, on the routes the policy makes itself too.
        var upstream = policy.Routes.Single(r => r.RouteId == "upstream");
        Assert.Equal(1L << 30, upstream.MaxRequestBodySize);
        Assert.Equal("Set", Transform(upstream, "X-Forwarded"));
        Assert.Equal("False", Transform(upstream, "RequestHeaderOriginalHost"), ignoreCase: true);
        Assert.Equal(TimeSpan.FromMinutes(10), policy.Clusters.Single(c => c.ClusterId == "upstream").HttpRequest?.ActivityTimeout);

        // h2c: HTTP/2 with no fallback, on the route's own cluster.
        var grpc = policy.Clusters.Single(c => c.ClusterId == "grpc-cluster").HttpRequest!;
        Assert.Equal((HttpVersion.Version20, HttpVersionPolicy.RequestVersionExact, TimeSpan.FromHours(1)), (grpc.Version, grpc.VersionPolicy, grpc.ActivityTimeout));

        var files = policy.Clusters.Single(c => c.ClusterId == "files");
        Assert.Equal((HttpVersion.Version20, HttpVersionPolicy.RequestVersionExact), (files.HttpRequest!.Version, files.HttpRequest.VersionPolicy));
        Assert.Equal(SslProtocols.Tls12 | SslProtocols.Tls13, files.HttpClient!.SslProtocols);
        Assert.Equal("files.internal", files.Destinations!.Values.Single().Host);
        Assert.Equal(_certificates.Authority, files.Metadata!["floodgate.tls.ca"]);
        Assert.Equal(_certificates.ClientCertificate, files.Metadata["floodgate.tls.client_cert"]);
        Assert.Equal(_certificates.ClientKey, files.Metadata["floodgate.tls.client_key"]);
        Assert.Equal("files.internal", files.Metadata["floodgate.tls.server_name"]);
    }

    [Fact]
    public void Every_traffic_field_is_checked_and_refused_with_its_file_line_and_field()
    {
        var error = Assert.Throws<PolicyException>(() => PolicyLoader.Parse($$"""
            proxy:
              max_request_body_size: lots
              activity_timeout: 0s
              x_forwarded: sometimes
            routes:
              - path: /a
                destinations: [https://127.0.0.1:5000]
                http_version: h2c
              - path: /b
                destinations: [http://127.0.0.1:5000]
                http_version: 4
                version_policy: maybe
                tls: { ca: {{_certificates.Authority}} }
              - path: /c
                cluster: c
                activity_timeout: 5s
                original_host: perhaps
            clusters:
              c:
                destinations: [https://127.0.0.1:5000]
                http_version: h2c
                version_policy: or_lower
                tls:
                  ca: /no/such/ca.pem
                  client_key: {{_certificates.ClientKey}}
                  server_name: "not a name"
                  protocols: [ssl3]
            """, "p.yaml"));

        Assert.Equal(
            [
                "p.yaml:2:26: proxy.max_request_body_size: 'lots' must be a size such as 1048576, 512kB, 100MB or 2GiB, or unlimited.",
                "p.yaml:3:21: proxy.activity_timeout: '0s' must be a duration such as 500ms, 30s, 5m or 1h, from 100ms to 7d.",
                "p.yaml:4:16: proxy.x_forwarded: 'sometimes' is not one of: append, set, remove, off.",
                "p.yaml:8:19: routes[0].http_version: h2c is HTTP/2 in cleartext, and https://127.0.0.1:5000/ is https: use http_version: 2 for HTTP/2 over TLS.",
                "p.yaml:11:19: routes[1].http_version: '4' is not one of: 1.0, 1.1, 2, h2c, 3.",
                "p.yaml:12:21: routes[1].version_policy: 'maybe' is not one of: or_lower, or_higher, exact.",
                "p.yaml:13:10: routes[1].tls: applies to https:// destinations, and http://127.0.0.1:5000/ is http.",
                "p.yaml:16:23: routes[2].activity_timeout: is a setting of the cluster the route sends to: set it on clusters.c, or give the route destinations of its own.",
                "p.yaml:17:20: routes[2].original_host: 'perhaps' is not true or false.",
                "p.yaml:21:19: clusters.c.http_version: h2c is HTTP/2 in cleartext, and https://127.0.0.1:5000/ is https: use http_version: 2 for HTTP/2 over TLS.",
                "p.yaml:22:21: clusters.c.version_policy: h2c is HTTP/2 with no fallback: leave version_policy out, or make it exact.",
                "p.yaml:24:11: clusters.c.tls.ca: the CA certificate file '/no/such/ca.pem' does not exist.",
                $"p.yaml:25:19: clusters.c.tls.client_key: a client key needs its certificate: set client_cert too.",
                "p.yaml:26:20: clusters.c.tls.server_name: 'not a name' is not a host name such as api.internal.example.",
                "p.yaml:27:19: clusters.c.tls.protocols: 'ssl3' is not one of: tls12, tls13.",
            ],
            error.Errors.Select(e => e.ToString()));
    }

    [Fact]
    public void A_CA_file_without_a_certificate_and_a_client_key_that_is_not_the_certificate_s_are_refused()
    {
        var other = TestCertificates.Create("Another CA");
        try
        {
            var error = Assert.Throws<PolicyException>(() => PolicyLoader.Parse($$"""
                upstream: https://127.0.0.1:5000
                clusters:
                  c:
                    destinations: [https://127.0.0.1:5000]
                    tls:
                      ca: {{_certificates.ClientKey}}
                      client_cert: {{_certificates.ClientCertificate}}
                      client_key: {{other.ClientKey}}
                """, "p.yaml"));
            Assert.Equal(2, error.Errors.Count);
            Assert.Equal("p.yaml:6:11: clusters.c.tls.ca: '" + _certificates.ClientKey + "' holds no PEM certificate (-----BEGIN CERTIFICATE-----).", error.Errors[0].ToString());
            Assert.StartsWith($"p.yaml:7:20: clusters.c.tls.client_cert: '{_certificates.ClientCertificate}' with the key '{other.ClientKey}' cannot be used: ", error.Errors[1].ToString(), StringComparison.Ordinal);
        }
        finally
        {
            other.Dispose();
        }
    }

    [Fact]
    public void Sizes_read_decimal_and_binary_units()
    {
        Assert.True(YamlReader.TryParseSize("100MB", out var mb));
        Assert.Equal(100_000_000, mb);
        Assert.True(YamlReader.TryParseSize("1.5GiB", out var gib));
        Assert.Equal(1_610_612_736, gib);
        Assert.True(YamlReader.TryParseSize("512 kB", out var kb));
        Assert.Equal(512_000, kb);
        Assert.True(YamlReader.TryParseSize("65536", out var bytes));
        Assert.Equal(65_536, bytes);
        Assert.False(YamlReader.TryParseSize("1.5", out _));
        Assert.False(YamlReader.TryParseSize("10 mb", out _));
        Assert.False(YamlReader.TryParseSize("-1", out _));
    }

    [Fact]
    public async Task A_route_s_body_size_limit_changes_with_a_reload()
    {
        await using var upstream = await TrafficUpstream.StartAsync();
        const string Policy = "routes:\n  - path: /{{**rest}}\n    destinations: [{0}]\n    max_request_body_size: {1}\n";
        await using var gate = await TrafficGateway.StartAsync(string.Format(null, Policy, upstream.Url, "1MB"));
        using var client = gate.Client();

        using (var refused = await client.PostAsync(new Uri("/upload", UriKind.Relative), new GeneratedContent(2_000_000)))
        {
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, refused.StatusCode);
        }

        Assert.Empty(await gate.ReloadAsync(string.Format(null, Policy, upstream.Url, "10MB")));
        using var taken = await client.PostAsync(new Uri("/upload", UriKind.Relative), new GeneratedContent(2_000_000));
        Assert.Equal(HttpStatusCode.OK, taken.StatusCode);
        Assert.Equal("2000000", await taken.Content.ReadAsStringAsync());
    }

    [Fact]
    public void The_listener_serves_h2c_when_told_and_refuses_both_versions_on_one_cleartext_port()
    {
        var policy = Path.GetTempFileName();
        try
        {
            var options = RunCommand.Options(GatewayCli.Build(TextWriter.Null, TextWriter.Null).Parse(["run", "--policy", policy, "--listen-protocols", "h2c"]));
            Assert.Equal(HttpProtocols.Http2, options.ListenProtocols);
            Assert.Equal(HttpProtocols.Http2, options.EffectiveListenProtocols);
            Assert.Equal(HttpProtocols.Http1, (options with { ListenProtocols = null }).EffectiveListenProtocols);
            Assert.Equal(HttpProtocols.Http1AndHttp2, (options with { ListenProtocols = null, Listen = new Uri("https://127.0.0.1:8443") }).EffectiveListenProtocols);

            var both = Assert.Throws<ArgumentException>(() => (options with { ListenProtocols = HttpProtocols.Http1AndHttp2 }).Validate());
            Assert.StartsWith("GatewayHostOptions.ListenProtocols: HTTP/1.1 and HTTP/2 share a port only over TLS", both.Message, StringComparison.Ordinal);

            var parse = GatewayCli.Build(TextWriter.Null, TextWriter.Null).Parse(["run", "--policy", policy, "--listen-protocols", "spdy"]);
            Assert.Contains("'spdy' is not one of: http1, h2c, http2, http1AndHttp2.", parse.Errors.Select(e => e.Message));
        }
        finally
        {
            File.Delete(policy);
        }
    }

    private static string? Transform(RouteConfig route, string key) =>
        route.Transforms?.FirstOrDefault(t => t.ContainsKey(key))?[key];
}
