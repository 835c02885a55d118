using Floodgate.Gateway.Hosting;
using Floodgate.Redis;
using Floodgate.Stores;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Metrics;

namespace Floodgate.Gateway.EnvoyMode;

/// <summary>
/// <c>floodgate envoy</c> running: Envoy's rate limit gRPC service on <c>GRPC_PORT</c> and its health and metrics on
/// <c>PORT</c> (and <c>PROMETHEUS_ADDR</c> with <c>USE_PROMETHEUS</c>), nothing else: no policy, no proxy, no admin port.
/// </summary>
internal sealed partial class EnvoyModeHost : IAsyncDisposable
{
    /// <summary>How long the start waits for Redis before the gRPC service takes traffic, as the gateway does.</summary>
    internal static readonly TimeSpan StoreStartupTimeout = TimeSpan.FromSeconds(30);

    private readonly WebApplication _grpc;
    private readonly WebApplication _http;
    private readonly WebApplication? _prometheus;
    private readonly IDisposable? _store;

    private EnvoyModeHost(WebApplication grpc, WebApplication http, WebApplication? prometheus, IDisposable? store)
    {
        _grpc = grpc;
        _http = http;
        _prometheus = prometheus;
        _store = store;
        GrpcAddress = WebApps.AddressOf(grpc);
        HttpAddress = WebApps.AddressOf(http);
        PrometheusAddress = prometheus is null ? null : WebApps.AddressOf(prometheus);
    }

    /// <summary>Where the gRPC service listens.</summary>
    public Uri GrpcAddress { get; }

    /// <summary>Where health and metrics listen.</summary>
    public Uri HttpAddress { get; }

    /// <summary>Where metrics also listen (<c>USE_PROMETHEUS</c>), if anywhere.</summary>
    public Uri? PrometheusAddress { get; }

    /// <summary>The service's container, for tests.</summary>
    internal IServiceProvider Services => _grpc.Services;

    /// <summary>
    /// Opens the store, starts health and metrics, waits up to <see cref="StoreStartupTimeout"/> for Redis (readiness says
    /// why meanwhile), loads the configuration directory and starts the gRPC service.
    /// </summary>
    /// <exception cref="Floodgate.Envoy.Configuration.EnvoyConfigException">The configuration directory does not load.</exception>
    public static async Task<EnvoyModeHost> StartAsync(ReferenceSettings settings, ILoggerProvider? logTo = null, TimeProvider? time = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(settings);
        time ??= TimeProvider.System;
        using var bootstrap = WebApps.CreateLoggerFactory(settings.LogLevel, logTo);
        var logger = bootstrap.CreateLogger("Floodgate.Gateway.EnvoyMode");
        foreach (var note in settings.Notes)
        {
            LogNote(logger, note);
        }

        RedisStore? redis = settings.Redis is { } options ? RedisStore.Connect(options, time, bootstrap.CreateLogger<RedisStore>()) : null;
        IRateLimitStore store = redis is null ? new MemoryStore(null, time) : StoreFactory.Instrument(redis, "redis");
        var grpc = EnvoyHosting.Build(Builder(settings, settings.Grpc, HttpProtocols.Http2, logTo), store, settings.ConfigureService, time);
        var health = grpc.Services.GetRequiredService<HealthCheckService>();
        var http = Endpoints(Builder(settings, settings.Http, HttpProtocols.Http1, logTo), settings, health, redis);
        var prometheus = settings.Prometheus is { } address ? Metrics(Builder(settings, address, HttpProtocols.Http1, logTo), settings.PrometheusPath) : null;
        var started = new List<WebApplication>();
        try
        {
            foreach (var app in new[] { http, prometheus })
            {
                if (app is not null)
                {
                    await app.StartAsync(cancellationToken).ConfigureAwait(false);
                    started.Add(app);
                }
            }

            if (redis is not null && !redis.IsConnected)
            {
                using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                deadline.CancelAfter(StoreStartupTimeout);
                try
                {
                    await redis.WaitConnectedAsync(deadline.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    LogRedisLate(logger, StoreStartupTimeout);
                }
            }

            await grpc.StartAsync(cancellationToken).ConfigureAwait(false);
            started.Add(grpc);
        }
        catch
        {
            await WebApps.StopAsync([.. started]).ConfigureAwait(false);
            foreach (var app in new[] { grpc, http, prometheus })
            {
                if (app is not null && !started.Contains(app))
                {
                    await app.DisposeAsync().ConfigureAwait(false);
                }
            }

            redis?.Dispose();
            throw;
        }

        var host = new EnvoyModeHost(grpc, http, prometheus, redis);
        LogStarted(logger, host.GrpcAddress, host.HttpAddress, redis is null ? "memory" : "redis");
        return host;
    }

    /// <summary>Stops listening and releases the store.</summary>
    public async ValueTask DisposeAsync()
    {
        await WebApps.StopAsync(_grpc, _http, _prometheus).ConfigureAwait(false);
        _store?.Dispose();
    }

    private static WebApplicationBuilder Builder(ReferenceSettings settings, Uri listen, HttpProtocols protocols, ILoggerProvider? logTo)
    {
        var builder = WebApps.CreateBuilder(listen, settings.LogLevel, protocols, logTo: logTo);
        if (settings.JsonLogs)
        {
            builder.Logging.ClearProviders();
            builder.Logging.AddJsonConsole();
            if (logTo is not null)
            {
                builder.Logging.AddProvider(logTo);
            }
        }

        return builder;
    }

    /// <summary>
    /// <c>/healthcheck</c> as the reference answers it (200 OK while a configuration is loaded, 500 otherwise),
    /// <c>/healthz</c> (alive), <c>/readyz</c> (configuration loaded and Redis connected) and <c>/metrics</c>.
    /// </summary>
    private static WebApplication Endpoints(WebApplicationBuilder builder, ReferenceSettings settings, HealthCheckService health, RedisStore? redis)
    {
        AddMetrics(builder);
        var app = builder.Build();
        app.MapPrometheusScrapingEndpoint("/metrics");
        if (settings.PrometheusPath != "/metrics")
        {
            app.MapPrometheusScrapingEndpoint(settings.PrometheusPath);
        }

        app.MapGet("/healthz", () => Results.Text("ok\n"));
        app.MapGet("/healthcheck", async (CancellationToken cancellationToken) =>
        {
            var report = await health.CheckHealthAsync(cancellationToken).ConfigureAwait(false);
            return report.Status == HealthStatus.Unhealthy
                ? Results.Text(Describe(report) + "\n", statusCode: StatusCodes.Status500InternalServerError)
                : Results.Text("OK");
        });
        app.MapGet("/readyz", async (CancellationToken cancellationToken) =>
        {
            var report = await health.CheckHealthAsync(cancellationToken).ConfigureAwait(false);
            var store = redis is null ? "memory" : redis.IsConnected ? "redis: connected" : "redis: connecting";
            var ready = report.Status != HealthStatus.Unhealthy && (redis is null || redis.IsConnected);
            return Results.Text($"{(ready ? "ready" : "not ready")}\nconfiguration: {Describe(report)}\nstore: {store}\n", statusCode: ready ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable);
        });
        return app;
    }

    private static WebApplication Metrics(WebApplicationBuilder builder, string path)
    {
        AddMetrics(builder);
        var app = builder.Build();
        app.MapPrometheusScrapingEndpoint(path);
        return app;
    }

    private static void AddMetrics(WebApplicationBuilder builder) =>
        builder.Services.AddOpenTelemetry().WithMetrics(metrics => metrics
            .AddMeter(Floodgate.Envoy.EnvoyServiceCollectionExtensions.MeterName, "Floodgate.Redis", Operations.GatewayMetrics.MeterName, "System.Runtime")
            .AddPrometheusExporter());

    private static string Describe(HealthReport report) =>
        string.Join("; ", report.Entries.Values.Select(e => e.Description ?? e.Status.ToString()));

    [LoggerMessage(1, LogLevel.Information, "Floodgate's Envoy rate limit service listening on {Grpc} (health and metrics on {Http}, store {Store})")]
    private static partial void LogStarted(ILogger logger, Uri grpc, Uri http, string store);

    [LoggerMessage(2, LogLevel.Warning, "{Note}")]
    private static partial void LogNote(ILogger logger, string note);

    [LoggerMessage(3, LogLevel.Critical, "Redis did not connect within {Timeout}: the service starts, and answers by the store's failure mode (open) until it does")]
    private static partial void LogRedisLate(ILogger logger, TimeSpan timeout);
}
