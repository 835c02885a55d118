using System.Diagnostics;
using Floodgate.AspNetCore;
using Floodgate.AspNetCore.Identity;
using Floodgate.AspNetCore.Middleware;
using Floodgate.Engine;
using Floodgate.Gateway.Identity;
using Floodgate.Gateway.Operations;
using Floodgate.Gateway.Policy;
using Floodgate.Stores;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
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
    private readonly TimeSpan _shutdownTimeout;
    private readonly TimeSpan _shutdownDelay;
    private int _stopping;

    private GatewayHost(WebApplication proxy, WebApplication? admin, WebApplication? envoy, PolicyWatcher? watcher, GatewayRuntime runtime, SwitchingStore store, ListenerCertificate? certificate, GatewayHostOptions options)
    {
        _shutdownTimeout = options.ShutdownTimeout;
        _shutdownDelay = options.ShutdownDelay;
        _certificate = certificate;
        _proxy = proxy;
        _admin = admin;
        _envoy = envoy;
        _watcher = watcher;
        Runtime = runtime;
        _store = store;
        ProxyAddress = WebApps.AddressOf(proxy);
        AdminAddress = admin is null ? null : WebApps.AddressOf(admin);
        EnvoyAddress = envoy is null ? null : WebApps.AddressOf(envoy);
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
    public RateLimitEngine Engine => Runtime.Floodgate.Engine;

    internal GatewayRuntime Runtime { get; }

    /// <summary>The Envoy service's container, if it runs; for tests.</summary>
    internal IServiceProvider? EnvoyServices => _envoy?.Services;

    /// <summary>
    /// Validates the policy, opens the store, starts the admin endpoints, waits for the store to connect (up to
    /// <see cref="GatewayHostOptions.StoreStartupTimeout"/>) and for the identity provider's keys (a few seconds at most),
    /// then starts taking traffic.
    /// </summary>
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
        using var bootstrapLogging = WebApps.CreateLoggerFactory(options.LogLevel, options.LoggerProvider);
        SwitchingStore store;
        OpenedStore opened;
        try
        {
            opened = options.Store is { } given
                ? new OpenedStore(StoreFactory.Instrument(given, StoreFactory.CustomKind), StoreFactory.CustomKind, null, new Overrides.MemoryOverrideStore(time))
                : StoreFactory.Open(policy, policy.Source, time, bootstrapLogging);
            store = new SwitchingStore(opened.Store, opened.Kind, opened.Owned, time);
        }
        catch
        {
            certificate?.Dispose();
            throw;
        }

        var identity = new SwitchingIdentityResolver();

        var builder = WebApps.CreateBuilder(options.Listen, options.LogLevel, options.EffectiveListenProtocols, certificate, options.LoggerProvider, options.ShutdownTimeout, traceIds: options.OtlpEndpoint is not null);
        Tracing.Add(builder, options);
        builder.Services.AddSingleton(time);
        builder.Services.AddSingleton<IRateLimitStore>(store);
        builder.Services.AddSingleton<IIdentityResolver>(identity);
        builder.Services.AddSingleton(identity);

        // The policy's options themselves, not a copy: a reload hands the runtime the next policy's (FloodgateRuntime.Apply).
        builder.Services.AddSingleton<IOptions<FloodgateOptions>>(Options.Create(policy.Floodgate));
        builder.Services.AddFloodgate();
        builder.Services.AddReverseProxy().LoadFromMemory(policy.Routes, policy.Clusters).AddProxyTraffic();
        builder.Services.AddSingleton(sp => new GatewayRuntime(
            policy,
            sp.GetRequiredService<FloodgateRuntime>(),
            sp.GetRequiredService<InMemoryConfigProvider>(),
            sp.GetRequiredService<IConfigValidator>(),
            identity,
            store,
            time,
            sp.GetRequiredService<ILoggerFactory>()));
        var proxy = builder.Build();
        var runtime = proxy.Services.GetRequiredService<GatewayRuntime>();
        runtime.UseBesideStore(opened);
        runtime.Events = new Events.ThresholdEvents(policy.Events, () => runtime.Thresholds, runtime.Logger, time);
        runtime.Floodgate.Engine.ThresholdObserver = runtime.Events;
        if (certificate is not null)
        {
            // Asked only while a bypass rule of the policy in force matches client certificates (docs/edge.md).
            certificate.AskForClientCertificate = () => runtime.Policy.AsksClientCertificates;
        }

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

        // First: a target with a control character is refused before it is counted, routed or forwarded.
        proxy.Use(RequestTargetCheck.InvokeAsync);
        proxy.UseRouting();
        proxy.UseFloodgate();
        proxy.MapReverseProxy(pipeline =>
        {
            var failures = new ForwardingFailures(proxy.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Floodgate.Gateway.Proxy"), time);
            pipeline.Use((context, next) => MeasureProxyAsync(context, next, failures));
            pipeline.UseSessionAffinity();
            pipeline.UseLoadBalancing();
            pipeline.UsePassiveHealthChecks();
        }).ConfigureEndpoints(static (endpoint, route) => Gateway.Policy.Sections.ApiKeysSection.AcceptCredentials(endpoint, route));

        WebApplication? admin = null;
        WebApplication? envoy = null;
        PolicyWatcher? watcher = null;
        var proxyStarted = false;
        try
        {
            // The admin endpoints first: /healthz answers and /readyz says why the replica is not ready while the start
            // waits below (they also serve the demo's JWKS, which the identity keys may come from).
            runtime.StartupWait = StartupWait.Describe(opened, options.StoreStartupTimeout, TimeProvider.System);
            if (options.Admin is not null)
            {
                admin = AdminHosting.Build(options, runtime, certificate);
                await admin.StartAsync(cancellationToken).ConfigureAwait(false);
                GatewayMetrics.ExportReloadSeries();
            }

            await StartupWait.RunAsync(runtime, opened, options.StoreStartupTimeout, cancellationToken).ConfigureAwait(false);
            await proxy.StartAsync(cancellationToken).ConfigureAwait(false);
            proxyStarted = true;
            if (options.Envoy is not null)
            {
                envoy = EnvoyHosting.Build(WebApps.CreateBuilder(options.Envoy, options.LogLevel, HttpProtocols.Http2, logTo: options.LoggerProvider, shutdownTimeout: options.ShutdownTimeout), runtime.Store, options.ConfigureEnvoyService, time);
                await envoy.StartAsync(cancellationToken).ConfigureAwait(false);
            }

            if (options.WatchPolicy)
            {
                watcher = new PolicyWatcher(options.PolicyPath, runtime);
            }
        }
        catch
        {
            if (proxyStarted)
            {
                await WebApps.StopAsync(proxy, admin, envoy).ConfigureAwait(false);
            }
            else
            {
                await WebApps.StopAsync(admin).ConfigureAwait(false);
                await proxy.DisposeAsync().ConfigureAwait(false);
            }

            certificate?.Dispose();
            store.Dispose();
            throw;
        }

        var host = new GatewayHost(proxy, admin, envoy, watcher, runtime, store, certificate, options);
        Log.Started(runtime.Logger, host.ProxyAddress, policy.Source, policy.Version, store.Kind, policy.Floodgate.Policy.Rules.Count);
        return host;
    }

    /// <summary>Reads the policy file again and puts it in force; an invalid file leaves the policy in force.</summary>
    /// <returns>The errors; empty when the new policy is in force.</returns>
    public IReadOnlyList<PolicyError> Reload() => Runtime.Reload(Runtime.Policy.Source);

    /// <summary>
    /// Stops gracefully, then releases the store: <c>/readyz</c> answers 503 "shutting down" from now on; after
    /// <see cref="GatewayHostOptions.ShutdownDelay"/> the proxy and the Envoy service stop taking connections and let
    /// the requests in flight finish, up to <see cref="GatewayHostOptions.ShutdownTimeout"/>, after which those still
    /// running are aborted; every request's concurrency permits are released on its way out, before the store closes.
    /// The admin endpoints stop last, so that <c>/readyz</c> is seen saying why throughout.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _stopping, 1) != 0)
        {
            return;
        }

        var started = Stopwatch.GetTimestamp();
        Runtime.ShuttingDown = true;
        Log.ShuttingDown(Runtime.Logger, _shutdownDelay.TotalSeconds, _shutdownTimeout.TotalSeconds);
        _watcher?.Dispose();
        if (_shutdownDelay > TimeSpan.Zero)
        {
            await Task.Delay(_shutdownDelay).ConfigureAwait(false);
        }

        using (var deadline = new CancellationTokenSource(_shutdownTimeout))
        {
            // Both front doors drain at once, against one deadline.
            await Task.WhenAll(WebApps.StopAsync(deadline.Token, _proxy), WebApps.StopAsync(deadline.Token, _envoy)).ConfigureAwait(false);
        }

        Log.Stopped(Runtime.Logger, Stopwatch.GetElapsedTime(started).TotalSeconds);
        await WebApps.StopAsync(_admin).ConfigureAwait(false);
        Runtime.Floodgate.Engine.ThresholdObserver = null;
        if (Runtime.Events is { } events)
        {
            await events.DisposeAsync().ConfigureAwait(false);
        }

        _certificate?.Dispose();
        _store.Dispose();
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

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Floodgate listening on {Address} with policy {Source} (version {Version}, store {Store}, {Rules} rules)")]
        public static partial void Started(ILogger logger, Uri address, string source, string version, string store, int rules);

        [LoggerMessage(2, LogLevel.Information, "Floodgate shutting down: /readyz says so, the proxy stops taking connections in {Delay} s and lets requests in flight finish for up to {Timeout} s")]
        public static partial void ShuttingDown(ILogger logger, double delay, double timeout);

        [LoggerMessage(3, LogLevel.Information, "Floodgate stopped taking traffic after {Seconds:0.###} s; requests in flight finished or aborted, their permits released")]
        public static partial void Stopped(ILogger logger, double seconds);
    }
}
