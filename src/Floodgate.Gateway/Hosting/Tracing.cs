using Floodgate.AspNetCore.Middleware;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Exporter;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Floodgate.Gateway.Hosting;

/// <summary>
/// Exports each request's rate-limit step (<see cref="FloodgateMiddleware.ActivitySourceName"/>) through OTLP when
/// <see cref="GatewayHostOptions.OtlpEndpoint"/> is set; spans join the caller's trace (<c>traceparent</c>).
/// Untraced, the source has no listener and the step costs one check.
/// </summary>
internal static class Tracing
{
    public const string ServiceName = "floodgate";

    public static void Add(WebApplicationBuilder builder, GatewayHostOptions options)
    {
        if (options.OtlpEndpoint is not { } endpoint)
        {
            return;
        }

        builder.Services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService(ServiceName))
            .WithTracing(tracing => tracing
                .AddSource(FloodgateMiddleware.ActivitySourceName)
                .AddOtlpExporter(otlp =>
                {
                    otlp.Protocol = options.OtlpProtocol;

                    // Set in code, the endpoint is taken as is: over HTTP it is the traces path itself.
                    otlp.Endpoint = options.OtlpProtocol == OtlpExportProtocol.HttpProtobuf && endpoint.AbsolutePath == "/"
                        ? new Uri(endpoint, "v1/traces")
                        : endpoint;
                }));
    }
}
