using System.Text.Json;
using Floodgate.Engine;
using Floodgate.Gateway.Admin;
using Floodgate.Gateway.Admin.Auth;
using Floodgate.Gateway.Dashboard;
using Floodgate.Gateway.Operations;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using OpenTelemetry.Metrics;

namespace Floodgate.Gateway.Hosting;

/// <summary>
/// The admin endpoints on their own port: <c>/metrics</c> (Prometheus), <c>/healthz</c> and <c>/readyz</c>, open; the admin
/// API under <see cref="AdminApi.BasePath"/>, behind the admin tokens (<see cref="AdminAuthorization"/>).
/// </summary>
internal static class AdminHosting
{
    /// <param name="options">The host's options.</param>
    /// <param name="runtime">The policy in force.</param>
    /// <param name="certificate">The gateway's TLS certificate, served on an https admin address.</param>
    /// <exception cref="ArgumentException">The policy requires client certificates on an admin port that is not https.</exception>
    public static WebApplication Build(GatewayHostOptions options, GatewayRuntime runtime, ListenerCertificate? certificate = null)
    {
        var https = options.Admin!.Scheme == Uri.UriSchemeHttps;
        if (runtime.Policy.AdminClientCertificates is not null && !https)
        {
            throw new ArgumentException($"{runtime.Policy.Source}: admin.client_certificates needs the admin port on https (--admin https://..., served with --certificate), not {options.Admin}.");
        }

        // On https the port asks every client for a certificate while the policy names client certificates, and takes
        // any at the handshake: the admin scheme checks it and answers 401 (logged) rather than dropping the connection.
        var builder = WebApps.CreateBuilder(options.Admin!, options.LogLevel, HttpProtocols.Http1, https ? certificate : null, logTo: options.LoggerProvider, onTls: https ? certificate?.Asking(() => runtime.Policy.AdminClientCertificates is not null) : null);
        builder.Services.AddOpenTelemetry().WithMetrics(metrics => metrics
            .AddMeter(RateLimitEngine.MeterName, "Floodgate.AspNetCore", Floodgate.Adaptive.AdaptiveLimiterSet.MeterName, GatewayMetrics.MeterName, "Floodgate.Redis", "Floodgate.Envoy", "System.Runtime")
            .AddView("floodgate.store.duration", new ExplicitBucketHistogramConfiguration { Boundaries = [0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25] })
            .AddView("floodgate.proxy.duration", new ExplicitBucketHistogramConfiguration { Boundaries = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] })
            .AddPrometheusExporter());
        builder.Services.AddAdminAuthentication(() => runtime.Policy.AdminTokens, () => runtime.Policy.AdminClientCertificates);
        builder.Services.AddProblemDetails();
        builder.Services.AddAdminOpenApi();
        var admin = builder.Build();
        admin.UseAuthentication();
        admin.UseAuthorization();
        admin.MapPrometheusScrapingEndpoint("/metrics");
        admin.MapGet("/healthz", () => Results.Text("ok\n"));
        admin.MapGet("/readyz", async (HttpContext context) =>
        {
            var (ready, status) = await Readiness.CheckAsync(runtime, context.RequestAborted).ConfigureAwait(false);
            context.Response.StatusCode = ready ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable;
            context.Response.ContentType = "application/json";
            await JsonSerializer.SerializeAsync(context.Response.Body, status, ReadinessJson.Default.ReadinessStatus, context.RequestAborted).ConfigureAwait(false);
        });
        var time = options.TimeProvider ?? TimeProvider.System;
        var adminGroup = AdminApi.Map(admin, runtime, time);
        AdminOpenApi.Map(admin);
        var dashboard = new GatewayDashboard(time);
        runtime.Floodgate.Engine.RejectionObserver = dashboard.Offenders;
        admin.Lifetime.ApplicationStopped.Register(() =>
        {
            runtime.Floodgate.Engine.RejectionObserver = null;
            dashboard.Dispose();
        });
        DashboardRoutes.Map(admin, adminGroup, runtime, dashboard);
        options.MapAdminEndpoints?.Invoke(admin);
        return admin;
    }
}
