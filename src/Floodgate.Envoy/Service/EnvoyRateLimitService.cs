using Envoy.Service.Ratelimit.V3;
using Grpc.Core;

namespace Floodgate.Envoy;

/// <summary>
/// The gRPC service <c>envoy.service.ratelimit.v3.RateLimitService</c>: Envoy's global rate limit API, answered by
/// Floodgate's engine. Map it with <see cref="EnvoyEndpointRouteBuilderExtensions.MapFloodgateEnvoy"/>.
/// </summary>
public sealed class EnvoyRateLimitService : RateLimitService.RateLimitServiceBase
{
    private readonly EnvoyRateLimitDecider _decider;

    internal EnvoyRateLimitService(EnvoyRateLimitDecider decider)
    {
        _decider = decider;
    }

    /// <summary>Decides whether the request described by the descriptors is over a limit.</summary>
    /// <exception cref="RpcException"><see cref="StatusCode.InvalidArgument"/> when the domain is empty or no descriptor is given.</exception>
    public override Task<RateLimitResponse> ShouldRateLimit(RateLimitRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(context);
        return _decider.DecideAsync(request, context.CancellationToken).AsTask();
    }
}
