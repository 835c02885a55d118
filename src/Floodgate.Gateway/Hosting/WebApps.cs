using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Floodgate.Gateway.Hosting;

/// <summary>The web apps a gateway runs (proxy, admin, Envoy service): their builder, logging, address and stop.</summary>
internal static class WebApps
{
    public static WebApplicationBuilder CreateBuilder(Uri listen, LogLevel level, HttpProtocols protocols, ListenerCertificate? certificate = null, ILoggerProvider? logTo = null, TimeSpan? shutdownTimeout = null, bool traceIds = false, Func<TlsHandshakeCallbackContext, ValueTask<System.Net.Security.SslServerAuthenticationOptions>>? onTls = null)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ContentRootPath = AppContext.BaseDirectory });

        // The host caps a stop at its own timeout (30 s by default), whatever deadline the caller gives.
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = shutdownTimeout ?? TimeSpan.FromSeconds(30));
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss ";

            // Traced, a line written during a request's rate-limit step (a rejection) ends with its trace and span ids.
            o.IncludeScopes = traceIds;
        });
        if (logTo is not null)
        {
            builder.Logging.AddProvider(logTo);
        }

        // Every log line written while an activity is current carries its trace id (a scope any structured provider sees).
        builder.Logging.Configure(o => o.ActivityTrackingOptions = ActivityTrackingOptions.TraceId | ActivityTrackingOptions.SpanId);
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
                    var tls = certificate ?? throw new InvalidOperationException($"{listen} is https, and no TLS certificate is loaded.");
                    o.UseHttps(new TlsHandshakeCallbackOptions { OnConnection = onTls ?? tls.OnConnection });
                }
            });
        });
        return builder;
    }

    public static ILoggerFactory CreateLoggerFactory(LogLevel level, ILoggerProvider? logTo = null) => LoggerFactory.Create(b =>
    {
        b.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss ";
        });
        if (logTo is not null)
        {
            b.AddProvider(logTo);
        }

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

    /// <summary>Where <paramref name="app"/> listens, as a client reaches it (a wildcard address as the loopback).</summary>
    public static Uri AddressOf(WebApplication app)
    {
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new Uri(address.Replace("://[::]", "://127.0.0.1", StringComparison.Ordinal).Replace("://0.0.0.0", "://127.0.0.1", StringComparison.Ordinal));
    }

    /// <summary>Stops and disposes each app given, in order.</summary>
    public static Task StopAsync(params WebApplication?[] apps) => StopAsync(CancellationToken.None, apps);

    /// <summary>
    /// Stops and disposes each app given, in order: each stops taking connections, then waits for its requests in flight
    /// until <paramref name="deadline"/> (or its host's shutdown timeout) and aborts those still running.
    /// </summary>
    public static async Task StopAsync(CancellationToken deadline, params WebApplication?[] apps)
    {
        foreach (var app in apps)
        {
            if (app is null)
            {
                continue;
            }

            try
            {
                await app.StopAsync(deadline).ConfigureAwait(false);
            }
            finally
            {
                await app.DisposeAsync().ConfigureAwait(false);
            }
        }
    }
}
