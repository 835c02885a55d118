using Floodgate.Envoy;
using Floodgate.Stores;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace Floodgate.Gateway.Hosting;

/// <summary>
/// Hosts Envoy's rate limit gRPC service (Floodgate.Envoy) on its own HTTP/2 cleartext port, deciding in the
/// gateway's store, so Envoy sidecars and the gateway share one budget.
/// </summary>
internal static class EnvoyHosting
{
    public static WebApplication Build(WebApplicationBuilder builder, GatewayRuntime runtime, Action<EnvoyRateLimitOptions> configure, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(runtime);
        builder.Services.AddSingleton(time);
        builder.Services.AddSingleton<IRateLimitStore>(runtime.Store);
        builder.Services.AddFloodgateEnvoy(configure);
        var app = builder.Build();
        app.MapFloodgateEnvoy();
        return app;
    }
}
