using Microsoft.AspNetCore.Builder;

namespace Floodgate.Gateway.Hosting;

/// <summary>
/// Hosts Envoy's rate limit gRPC service on its own HTTP/2 cleartext port, sharing the gateway's store. The service
/// itself lives in Floodgate.Envoy.
/// </summary>
internal static class EnvoyHosting
{
    public static WebApplication Build(WebApplicationBuilder builder, GatewayRuntime runtime)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(runtime);
        throw new InvalidOperationException("--envoy: this build of the gateway does not include the Envoy rate limit service (Floodgate.Envoy).");
    }
}
