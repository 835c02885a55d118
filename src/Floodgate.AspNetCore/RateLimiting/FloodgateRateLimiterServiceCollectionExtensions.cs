using System.Globalization;
using System.Threading.RateLimiting;
using Floodgate.AspNetCore.Middleware;
using Floodgate.RateLimiting;
using Floodgate.Stores;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

// The conventional namespace of registration methods, so that they are found without a using of ours.
namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Plugs Floodgate into ASP.NET Core's own rate limiting middleware (<c>AddRateLimiter</c>, <c>UseRateLimiter</c>).</summary>
public static class FloodgateRateLimiterServiceCollectionExtensions
{
    /// <summary>
    /// Adds ASP.NET Core's rate limiter with a <see cref="FloodgatePartitionedRateLimiter{TResource}"/> over the
    /// registered <see cref="IRateLimitStore"/> (the in-memory store unless one is registered, such as by
    /// <c>AddFloodgateRedisStore</c>) as its global limiter, rejections answered 429 with <c>Retry-After</c> (whole
    /// seconds, rounded up), then <paramref name="configure"/>. Call <c>app.UseRateLimiter()</c> after
    /// <c>UseAuthentication</c> when <paramref name="partitioner"/> reads the user.
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="partitioner">The key and limit of a request; <see cref="FloodgatePartition.NoLimit"/> (a null key) for none.</param>
    /// <param name="configure">Changes the rate limiter's options after Floodgate's, such as to add policies or another <c>OnRejected</c>.</param>
    /// <returns><paramref name="services"/>.</returns>
    public static IServiceCollection AddFloodgateRateLimiter(this IServiceCollection services, Func<HttpContext, FloodgatePartition> partitioner, Action<RateLimiterOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(partitioner);
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<IRateLimitStore>(sp => new MemoryStore(null, sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton<IConfigureOptions<RateLimiterOptions>>(sp => new ConfigureOptions<RateLimiterOptions>(
            options => options.GlobalLimiter = new FloodgatePartitionedRateLimiter<HttpContext>(sp.GetRequiredService<IRateLimitStore>(), partitioner, "global")));
        return services.AddRateLimiter(options =>
        {
            options.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            options.OnRejected = WriteRetryAfterAsync;
            configure?.Invoke(options);
        });
    }

    /// <summary>Sets <c>Retry-After</c> from the lease's <see cref="MetadataName.RetryAfter"/>, when it has one.</summary>
    private static ValueTask WriteRetryAfterAsync(OnRejectedContext context, CancellationToken cancellationToken)
    {
        if (context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter))
        {
            var seconds = Math.Max(1, RateLimitResponses.CeilingSeconds(retryAfter));
            context.HttpContext.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
        }

        return ValueTask.CompletedTask;
    }
}
