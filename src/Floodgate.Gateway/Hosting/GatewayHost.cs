using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Floodgate.AspNetCore;
using Floodgate.AspNetCore.Identity;
using Floodgate.AspNetCore.Middleware;
using Floodgate.Engine;
using Floodgate.Gateway.Identity;
using Floodgate.Gateway.Operations;
using Floodgate.Gateway.Policy;
using Floodgate.Limits;
using Floodgate.Stores;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OpenTelemetry.Metrics;
using Yarp.ReverseProxy.Configuration;

namespace Floodgate.Gateway.Hosting;

/// <summary>
/// A running gateway: the proxy on its port, the admin endpoints on theirs, the policy file watched and reloaded.
/// Start one with <see cref="StartAsync"/>; dispose it to stop.
/// </summary>
public sealed partial class GatewayHost : IAsyncDisposable
{
    private readonly WebApplication _proxy;
    private readonly WebApplication? _admin;
    private readonly WebApplication? _envoy;
    private readonly PolicyWatcher? _watcher;
    private readonly SwitchingStore _store;
    private readonly ListenerCertificate? _certificate;

    private GatewayHost(WebApplication proxy, WebApplication? admin, WebApplication? envoy, PolicyWatcher? watcher, GatewayRuntime runtime, SwitchingStore store, ListenerCertificate? certificate)
    {
        _certificate = certificate;
        _proxy = proxy;
        _admin = admin;
        _envoy = envoy;
        _watcher = watcher;
        Runtime = runtime;
        _store = store;
        ProxyAddress = AddressOf(proxy);
        AdminAddress = admin is null ? null : AddressOf(admin);
        EnvoyAddress = envoy is null ? null : AddressOf(envoy);
    }

    /// <summary>Where the proxy listens.</summary>
    public Uri ProxyAddress { get; }

    /// <summary>Where the admin endpoints listen, if anywhere.</summary>
    public Uri? AdminAddress { get; }

    /// <summary>Where the Envoy rate limit service listens, if anywhere.</summary>
    public Uri? EnvoyAddress { get; }

    /// <summary>The policy in force.</summary>
    public GatewayPolicy Policy => Runtime.Policy;

    /// <summary>The engine.</summary>
    public RateLimitEngine Engine => Runtime.Gate.Engine;

    internal GatewayRuntime Runtime { get; }

    /// <summary>The Envoy service's container, if it runs; for tests.</summary>
    internal IServiceProvider? EnvoyServices => _envoy?.Services;

    /// <summary>Validates the policy, opens the store and starts listening.</summary>
    /// <exception cref="PolicyException">The policy is invalid.</exception>
    /// <exception cref="InvalidOperationException">The TLS certificate cannot be served.</exception>
    public static async Task<GatewayHost> StartAsync(GatewayHostOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var policy = PolicyLoader.Load(options.PolicyPath);
        var time = options.TimeProvider ?? TimeProvider.System;
        // Before the store opens: a certificate that cannot serve stops the start with nothing to undo.
        var certificate = options.Certificate is null ? null : ListenerCertificate.Load(options.Certificate, options.CertificateKey, time);
        using var bootstrapLogging = CreateLoggerFactory(options.LogLevel);
        SwitchingStore store;
        try
        {
            var opened = options.Store is { } given
                ? new OpenedStore(GatewayRuntime.Instrument(given, GatewayRuntime.CustomStoreKind), GatewayRuntime.CustomStoreKind, null)
                : GatewayRuntime.OpenStore(policy, policy.Source, time, bootstrapLogging);
            store = new SwitchingStore(opened.Store, opened.Kind, opened.Owned, time);
        }
        catch
        {
            certificate?.Dispose();
            throw;
        }

        var identity = new SwitchingIdentityResolver();

        var builder = CreateBuilder(options.Listen, options.LogLevel, HttpProtocols.Http1, certificate);
        builder.Services.AddSingleton(time);
        builder.Services.AddSingleton<IRateLimitStore>(store);
        builder.Services.AddSingleton<IIdentityResolver>(identity);
        builder.Services.AddSingleton(identity);

        // The policy's options themselves, not a copy: a reload hands the gate the next policy's (FloodgateGate.Apply).
        builder.Services.AddSingleton<IOptions<FloodgateOptions>>(Options.Create(policy.Floodgate));
        builder.Services.AddFloodgate();
        builder.Services.AddReverseProxy().LoadFromMemory(policy.Routes, policy.Clusters);
        builder.Services.AddSingleton(sp => new GatewayRuntime(
            policy,
            sp.GetRequiredService<FloodgateGate>(),
            sp.GetRequiredService<InMemoryConfigProvider>(),
            sp.GetRequiredService<IConfigValidator>(),
            identity,
            store,
            time,
            sp.GetRequiredService<ILoggerFactory>()));
        var proxy = builder.Build();
        var runtime = proxy.Services.GetRequiredService<GatewayRuntime>();
        try
        {
            if (runtime.ValidateProxy(policy) is { Count: > 0 } proxyErrors)
            {
                throw new PolicyException(proxyErrors);
            }

            runtime.ApplyIdentity(policy.Jwt);
        }
        catch
        {
            await proxy.DisposeAsync().ConfigureAwait(false);
            certificate?.Dispose();
            store.Dispose();
            throw;
        }

        certificate?.Watch(runtime.Logger);

        proxy.UseRouting();
        proxy.UseFloodgate();
        proxy.MapReverseProxy(pipeline =>
        {
            var failures = new ForwardingFailures(proxy.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Floodgate.Gateway.Proxy"), time);
            pipeline.Use((context, next) => MeasureProxyAsync(context, next, failures));
            pipeline.UseSessionAffinity();
            pipeline.UseLoadBalancing();
            pipeline.UsePassiveHealthChecks();
        });
        try
        {
            await proxy.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await proxy.DisposeAsync().ConfigureAwait(false);
            certificate?.Dispose();
            store.Dispose();
            throw;
        }

        WebApplication? admin = null;
        WebApplication? envoy = null;
        PolicyWatcher? watcher = null;
        try
        {
            if (options.Admin is not null)
            {
                admin = BuildAdmin(options, runtime);
                await admin.StartAsync(cancellationToken).ConfigureAwait(false);
            }

            if (options.Envoy is not null)
            {
                envoy = EnvoyHosting.Build(CreateBuilder(options.Envoy, options.LogLevel, HttpProtocols.Http2), runtime, options.ConfigureEnvoyService, time);
                await envoy.StartAsync(cancellationToken).ConfigureAwait(false);
            }

            if (options.WatchPolicy)
            {
                watcher = new PolicyWatcher(options.PolicyPath, runtime);
            }
        }
        catch
        {
            await StopAsync(proxy, admin, envoy).ConfigureAwait(false);
            certificate?.Dispose();
            store.Dispose();
            throw;
        }

        var host = new GatewayHost(proxy, admin, envoy, watcher, runtime, store, certificate);
        Log.Started(runtime.Logger, host.ProxyAddress, policy.Source, policy.Version, store.Kind, policy.Floodgate.Policy.Rules.Count);
        return host;
    }

    /// <summary>Reads the policy file again and puts it in force; an invalid file leaves the policy in force.</summary>
    /// <returns>The errors; empty when the new policy is in force.</returns>
    public IReadOnlyList<PolicyError> Reload() => Runtime.Reload(Runtime.Policy.Source);

    /// <summary>Stops listening and releases the store.</summary>
    public async ValueTask DisposeAsync()
    {
        _watcher?.Dispose();
        await StopAsync(_proxy, _admin, _envoy).ConfigureAwait(false);
        _certificate?.Dispose();
        _store.Dispose();
    }

    internal static WebApplicationBuilder CreateBuilder(Uri listen, LogLevel level, HttpProtocols protocols, ListenerCertificate? certificate = null)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss ";
        });
        builder.Logging.SetMinimumLevel(level);
        builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
        builder.Logging.AddFilter("Yarp", LogLevel.Warning);
        // One warning with a stack trace per failed request: ForwardingFailures logs them within a budget instead.
        builder.Logging.AddFilter("Yarp.ReverseProxy.Forwarder.HttpForwarder", LogLevel.Error);
        builder.Logging.AddFilter("Microsoft.AspNetCore.DataProtection", LogLevel.Error);

        // Request logging off: with it on, ASP.NET Core opens a log scope per request even when nothing is written.
        builder.Logging.AddFilter("Microsoft.AspNetCore.Hosting.Diagnostics", LogLevel.None);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Listen(EndPointOf(listen), o =>
            {
                o.Protocols = protocols;
                if (listen.Scheme == Uri.UriSchemeHttps)
                {
                    // Over TLS, ALPN lets every client choose HTTP/2 or HTTP/1.1.
                    var tls = certificate ?? throw new InvalidOperationException($"{listen} is https, and no TLS certificate is loaded.");
                    o.Protocols = HttpProtocols.Http1AndHttp2;
                    o.UseHttps(new TlsHandshakeCallbackOptions { OnConnection = tls.OnConnection });
                }
            });
        });
        return builder;
    }

    internal static ILoggerFactory CreateLoggerFactory(LogLevel level) => LoggerFactory.Create(b =>
    {
        b.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss ";
        });
        b.SetMinimumLevel(level);
    });

    private static IPEndPoint EndPointOf(Uri uri)
    {
        var host = uri.Host.Trim('[', ']');
        var address = host switch
        {
            "localhost" => IPAddress.Loopback,
            "0.0.0.0" or "*" => IPAddress.Any,
            _ => IPAddress.TryParse(host, out var ip) ? ip : throw new ArgumentException($"'{uri}' must name an IP address or localhost.", nameof(uri)),
        };
        return new IPEndPoint(address, uri.Port);
    }

    private static Uri AddressOf(WebApplication app)
    {
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new Uri(address.Replace("://[::]", "://127.0.0.1", StringComparison.Ordinal).Replace("://0.0.0.0", "://127.0.0.1", StringComparison.Ordinal));
    }

    private static async Task MeasureProxyAsync(HttpContext context, Func<Task> next, ForwardingFailures failures)
    {
        var start = Stopwatch.GetTimestamp();
        try
        {
            await next().ConfigureAwait(false);
        }
        finally
        {
            var route = context.GetEndpoint()?.DisplayName ?? "none";
            failures.Report(context, route);
            GatewayMetrics.ProxyDuration.Record(
                Stopwatch.GetElapsedTime(start).TotalSeconds,
                new KeyValuePair<string, object?>("route", route),
                new KeyValuePair<string, object?>("status", context.Response.StatusCode));
        }
    }

    private static WebApplication BuildAdmin(GatewayHostOptions options, GatewayRuntime runtime)
    {
        var builder = CreateBuilder(options.Admin!, options.LogLevel, HttpProtocols.Http1);
        builder.Services.AddOpenTelemetry().WithMetrics(metrics => metrics
            .AddMeter(RateLimitEngine.MeterName, "Floodgate.AspNetCore", GatewayMetrics.MeterName, "Floodgate.Redis", "Floodgate.Envoy", "System.Runtime")
            .AddView("floodgate.store.duration", new ExplicitBucketHistogramConfiguration { Boundaries = [0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25] })
            .AddView("floodgate.proxy.duration", new ExplicitBucketHistogramConfiguration { Boundaries = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] })
            .AddPrometheusExporter());
        var admin = builder.Build();
        admin.MapPrometheusScrapingEndpoint("/metrics");
        admin.MapGet("/healthz", () => Results.Text("ok\n"));
        admin.MapGet("/readyz", async (HttpContext context) =>
        {
            var (ready, status) = await runtime.CheckReadinessAsync(context.RequestAborted).ConfigureAwait(false);
            context.Response.StatusCode = ready ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable;
            context.Response.ContentType = "application/json";
            await JsonSerializer.SerializeAsync(context.Response.Body, status, ReadinessJson.Default.ReadinessStatus, context.RequestAborted).ConfigureAwait(false);
        });
        options.MapAdminEndpoints?.Invoke(admin);
        return admin;
    }

    private static async Task StopAsync(params WebApplication?[] apps)
    {
        foreach (var app in apps)
        {
            if (app is null)
            {
                continue;
            }

            try
            {
                await app.StopAsync(CancellationToken.None).ConfigureAwait(false);
            }
            finally
            {
                await app.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Floodgate listening on {Address} with policy {Source} (version {Version}, store {Store}, {Rules} rules)")]
        public static partial void Started(ILogger logger, Uri address, string source, string version, string store, int rules);
    }
}
