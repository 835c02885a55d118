using Floodgate.Envoy;
using Floodgate.Stores;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace Floodgate.Gateway.Hosting;

/// <summary>
/// Hosts Envoy's rate limit gRPC service (Floodgate.Envoy) on its own HTTP/2 cleartext port, deciding in the
/// gateway's store, so Envoy sidecars and the gateway share one budget; or alone (<c>floodgate envoy</c>) in a store of
/// its own.
/// </summary>
internal static class EnvoyHosting
{
    public static WebApplication Build(WebApplicationBuilder builder, IRateLimitStore store, Action<EnvoyRateLimitOptions> configure, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(store);
        builder.Services.AddSingleton(time);
        builder.Services.AddSingleton(store);
        builder.Services.AddFloodgateEnvoy(configure);
        var app = builder.Build();
        app.MapFloodgateEnvoy();
        return app;
    }
}
