using Floodgate.Envoy;
using Floodgate.Stores;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Floodgate.Gateway.Hosting;

/// <summary>How to run a gateway: the policy file, the addresses, and what tests or embedders replace.</summary>
public sealed record GatewayHostOptions
{
    /// <summary>The policy file.</summary>
    public required string PolicyPath { get; init; }

    /// <summary>
    /// Where the proxy listens, such as <c>http://127.0.0.1:8080</c> (HTTP/1.1) or <c>https://0.0.0.0:8443</c> (HTTP/1.1
    /// and HTTP/2, with <see cref="Certificate"/>); port 0 picks a free port.
    /// </summary>
    public Uri Listen { get; init; } = new("http://127.0.0.1:8080");

    /// <summary>
    /// The HTTP versions the proxy serves on <see cref="Listen"/>: <see cref="HttpProtocols.Http1"/>,
    /// <see cref="HttpProtocols.Http2"/> or, over TLS only, <see cref="HttpProtocols.Http1AndHttp2"/> (chosen by ALPN).
    /// On an <c>http://</c> address <see cref="HttpProtocols.Http2"/> is h2c, HTTP/2 with prior knowledge, which gRPC
    /// clients speak in cleartext; HTTP/1.1 clients cannot share that port, as cleartext has no ALPN to choose by.
    /// <see langword="null"/> (the default) for HTTP/1.1 on http:// and both on https://.
    /// </summary>
    public HttpProtocols? ListenProtocols { get; init; }

    /// <summary>
    /// With an <c>https://</c> <see cref="Listen"/> address: the PEM file of the proxy's TLS certificate, leaf first, then
    /// any intermediates to send with it. Read again when it changes.
    /// </summary>
    public string? Certificate { get; init; }

    /// <summary>The PEM file of <see cref="Certificate"/>'s private key; <see langword="null"/> when it is in the certificate file.</summary>
    public string? CertificateKey { get; init; }

    /// <summary>
    /// Where the admin endpoints (<c>/metrics</c>, <c>/healthz</c>, <c>/readyz</c>, the admin API) listen; <see langword="null"/> for
    /// none. An <c>https://</c> address serves <see cref="Certificate"/>, and can require client certificates (policy <c>admin.client_certificates</c>).
    /// </summary>
    public Uri? Admin { get; init; } = new("http://127.0.0.1:9090");

    /// <summary>
    /// Where the Envoy rate limit gRPC service listens (HTTP/2 cleartext), sharing the gateway's store;
    /// <see langword="null"/> for none.
    /// </summary>
    public Uri? Envoy { get; init; }

    /// <summary>The directory of envoyproxy/ratelimit YAML files the Envoy service reads; required with <see cref="Envoy"/>.</summary>
    public string? EnvoyConfigDirectory { get; init; }

    /// <summary>
    /// Sets the Envoy service's other options (shadow mode, response headers, descriptor cap…); with <see cref="Envoy"/>
    /// only. <see cref="EnvoyRateLimitOptions.ConfigDirectory"/> is <see cref="EnvoyConfigDirectory"/>, whatever this sets.
    /// <see langword="null"/> for the defaults.
    /// </summary>
    public Action<EnvoyRateLimitOptions>? ConfigureEnvoy { get; init; }

    /// <summary>Whether a change to the policy file is applied without a restart. Default on.</summary>
    public bool WatchPolicy { get; init; } = true;

    /// <summary>The clock of the store and the engine; the system clock by default. Tests use a fake one.</summary>
    public TimeProvider? TimeProvider { get; init; }

    /// <summary>A store to use instead of the one the policy names, such as a store shared between hosts in a test.</summary>
    public IRateLimitStore? Store { get; init; }

    /// <summary>The least severe log level written. Default <see cref="LogLevel.Information"/>.</summary>
    public LogLevel LogLevel { get; init; } = LogLevel.Information;

    /// <summary>
    /// How long the start waits for the store the policy names to connect before the proxy (and the Envoy service) takes
    /// traffic: 30 seconds by default. Meanwhile the admin endpoints answer, <c>/readyz</c> says not ready, and the proxy's
    /// port is not open, so no request is answered by <c>on_failure</c> for want of a connection. When it passes, the
    /// gateway logs it as critical and starts, its decisions following <c>on_failure</c> until the store connects.
    /// <see cref="TimeSpan.Zero"/> does not wait. Only a Redis store waits: the memory store, and a <see cref="Store"/> the
    /// host gives, are ready at once.
    /// </summary>
    public TimeSpan StoreStartupTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long a stopping gateway (SIGTERM, or the host disposed) lets the requests in flight finish once it has stopped
    /// taking connections: 30 seconds by default. Requests still running then are aborted; the concurrency permits of
    /// every request, finished or aborted, are released before the store is closed.
    /// </summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long a stopping gateway goes on taking requests, with <c>/readyz</c> answering 503 "shutting down", before it
    /// stops taking connections: time for a load balancer or Kubernetes to take it out of rotation, so that no client
    /// is sent to a closed port. <see cref="TimeSpan.Zero"/> (the default) stops at once.
    /// </summary>
    public TimeSpan ShutdownDelay { get; init; } = TimeSpan.Zero;

    /// <summary>
    /// Where each request's rate-limit step is exported as an OpenTelemetry span (OTLP), such as
    /// <c>http://otel-collector:4317</c>; <see langword="null"/> (the default) exports none. The exporter's other
    /// settings follow the standard <c>OTEL_EXPORTER_OTLP_*</c> variables (headers, timeout).
    /// </summary>
    public Uri? OtlpEndpoint { get; init; }

    /// <summary>The OTLP protocol of <see cref="OtlpEndpoint"/>: gRPC (the default, port 4317) or HTTP/protobuf (port 4318).</summary>
    public OpenTelemetry.Exporter.OtlpExportProtocol OtlpProtocol { get; init; } = OpenTelemetry.Exporter.OtlpExportProtocol.Grpc;

    /// <summary>
    /// Another place the gateway's log lines go, next to the console, such as an embedder's logging or a test's recorder.
    /// The gateway does not dispose it.
    /// </summary>
    public ILoggerProvider? LoggerProvider { get; init; }

    /// <summary>Extra endpoints on the admin port, such as the demo's JWKS.</summary>
    public Action<Microsoft.AspNetCore.Routing.IEndpointRouteBuilder>? MapAdminEndpoints { get; init; }

    /// <summary>Throws when an option is invalid, naming it.</summary>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    public void Validate()
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(PolicyPath);
        if (Envoy is not null && string.IsNullOrWhiteSpace(EnvoyConfigDirectory))
        {
            throw new ArgumentException("GatewayHostOptions.EnvoyConfigDirectory is required with Envoy: the directory of envoyproxy/ratelimit YAML files.", nameof(EnvoyConfigDirectory));
        }

        if (Envoy is null && ConfigureEnvoy is not null)
        {
            throw new ArgumentException("GatewayHostOptions.ConfigureEnvoy sets options of the Envoy service, which is off: set Envoy too, or leave ConfigureEnvoy null.", nameof(ConfigureEnvoy));
        }

        if (Envoy is not null)
        {
            try
            {
                EnvoyOptions().Validate();
            }
            catch (OptionsValidationException e)
            {
                throw new ArgumentException(e.Message, nameof(ConfigureEnvoy), e);
            }
        }

        if (!Listen.IsAbsoluteUri || (Listen.Scheme != Uri.UriSchemeHttp && Listen.Scheme != Uri.UriSchemeHttps) || Listen.AbsolutePath != "/")
        {
            throw new ArgumentException($"GatewayHostOptions.Listen must be an http:// or https:// address with no path, such as http://127.0.0.1:8080, not '{Listen}'.", nameof(Listen));
        }

        if (Listen.Scheme == Uri.UriSchemeHttps && string.IsNullOrWhiteSpace(Certificate))
        {
            throw new ArgumentException($"GatewayHostOptions.Listen is https ({Listen}): the TLS certificate is required (--certificate, a PEM file).", nameof(Certificate));
        }

        if (Listen.Scheme == Uri.UriSchemeHttp && Admin?.Scheme != Uri.UriSchemeHttps && (Certificate is not null || CertificateKey is not null))
        {
            throw new ArgumentException($"A TLS certificate was given, but GatewayHostOptions.Listen is http ({Listen}): listen on an https:// address to serve it.", nameof(Certificate));
        }

        if (Admin?.Scheme == Uri.UriSchemeHttps && string.IsNullOrWhiteSpace(Certificate))
        {
            throw new ArgumentException($"GatewayHostOptions.Admin is https ({Admin}): the TLS certificate is required (--certificate, a PEM file), which the admin port serves too.", nameof(Certificate));
        }

        if (StoreStartupTimeout < TimeSpan.Zero || StoreStartupTimeout > TimeSpan.FromHours(1))
        {
            throw new ArgumentException($"GatewayHostOptions.StoreStartupTimeout must be between 0 and 1 hour, not {StoreStartupTimeout}.", nameof(StoreStartupTimeout));
        }

        if (ShutdownTimeout < TimeSpan.Zero || ShutdownTimeout > TimeSpan.FromHours(1))
        {
            throw new ArgumentException($"GatewayHostOptions.ShutdownTimeout must be between 0 and 1 hour, not {ShutdownTimeout}.", nameof(ShutdownTimeout));
        }

        if (ShutdownDelay < TimeSpan.Zero || ShutdownDelay > TimeSpan.FromMinutes(10))
        {
            throw new ArgumentException($"GatewayHostOptions.ShutdownDelay must be between 0 and 10 minutes, not {ShutdownDelay}.", nameof(ShutdownDelay));
        }

        if (ListenProtocols is { } protocols && protocols is not (HttpProtocols.Http1 or HttpProtocols.Http2 or HttpProtocols.Http1AndHttp2))
        {
            throw new ArgumentException($"GatewayHostOptions.ListenProtocols must be Http1, Http2 or Http1AndHttp2, not {protocols}.", nameof(ListenProtocols));
        }

        if (ListenProtocols == HttpProtocols.Http1AndHttp2 && Listen.Scheme == Uri.UriSchemeHttp)
        {
            // Kestrel would serve HTTP/1.1 alone there, and refuse every HTTP/2 connection.
            throw new ArgumentException($"GatewayHostOptions.ListenProtocols: HTTP/1.1 and HTTP/2 share a port only over TLS, where ALPN chooses, and {Listen} is http: serve Http2 (h2c) or Http1 there, or listen on https.", nameof(ListenProtocols));
        }

        if (OtlpEndpoint is { } otlp && (!otlp.IsAbsoluteUri || (otlp.Scheme != Uri.UriSchemeHttp && otlp.Scheme != Uri.UriSchemeHttps)))
        {
            throw new ArgumentException($"GatewayHostOptions.OtlpEndpoint must be an http:// or https:// address, such as http://otel-collector:4317, not '{otlp}'.", nameof(OtlpEndpoint));
        }

        if (Admin is not null && (!Admin.IsAbsoluteUri || (Admin.Scheme != Uri.UriSchemeHttp && Admin.Scheme != Uri.UriSchemeHttps) || Admin.AbsolutePath != "/"))
        {
            throw new ArgumentException($"GatewayHostOptions.Admin must be an http:// or https:// address with no path, such as http://127.0.0.1:9090, not '{Admin}'.", nameof(Admin));
        }

        if (Envoy is not null && (!Envoy.IsAbsoluteUri || Envoy.Scheme != Uri.UriSchemeHttp || Envoy.AbsolutePath != "/"))
        {
            throw new ArgumentException($"GatewayHostOptions.Envoy must be an http:// address with no path, such as http://127.0.0.1:9090, not '{Envoy}'.", nameof(Envoy));
        }
    }

    /// <summary>The HTTP versions the proxy serves: <see cref="ListenProtocols"/>, or its default for the scheme of <see cref="Listen"/>.</summary>
    internal HttpProtocols EffectiveListenProtocols =>
        ListenProtocols ?? (Listen.Scheme == Uri.UriSchemeHttps ? HttpProtocols.Http1AndHttp2 : HttpProtocols.Http1);

    /// <summary>Applies <see cref="EnvoyConfigDirectory"/> and <see cref="ConfigureEnvoy"/> to the Envoy service's options.</summary>
    internal void ConfigureEnvoyService(EnvoyRateLimitOptions options)
    {
        ConfigureEnvoy?.Invoke(options);
        options.ConfigDirectory = EnvoyConfigDirectory ?? string.Empty;
    }

    /// <summary>The Envoy service's options, as <see cref="ConfigureEnvoyService"/> sets them.</summary>
    internal EnvoyRateLimitOptions EnvoyOptions()
    {
        var options = new EnvoyRateLimitOptions();
        ConfigureEnvoyService(options);
        return options;
    }
}
