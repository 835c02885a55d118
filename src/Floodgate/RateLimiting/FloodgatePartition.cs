using Floodgate.Limits;

namespace Floodgate.RateLimiting;

/// <summary>Which key and limit a resource is counted under; see <see cref="FloodgatePartitionedRateLimiter{TResource}"/>.</summary>
/// <param name="Key">The partition key, such as a user id; <see langword="null"/> when the resource is not limited.</param>
/// <param name="Limit">The limit of the partition; <see langword="null"/> when the resource is not limited.</param>
/// <param name="Cost">How much one permit costs. Default 1.</param>
public readonly record struct FloodgatePartition(string? Key, Limit? Limit, long Cost = 1)
{
    /// <summary>A resource that is not limited.</summary>
    public static FloodgatePartition NoLimit => default;
}
