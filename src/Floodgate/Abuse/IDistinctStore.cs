using Floodgate.Keys;

namespace Floodgate.Abuse;

/// <summary>Where distinct rules keep their sets: in process (<see cref="MemoryDistinctStore"/>) or in Redis (HyperLogLogs every replica shares).</summary>
public interface IDistinctStore
{
    /// <summary>
    /// Adds <paramref name="value"/> (a 64-bit hash of the counted part) to the set of <paramref name="key"/> in the
    /// window that starts at <paramref name="windowStart"/> and lasts <paramref name="period"/>, and answers how many
    /// distinct values that set holds now: exact up to <see cref="DistinctSketch.ExactCapacity"/>, estimated above.
    /// </summary>
    /// <remarks>One store call, never a hang: a remote store that cannot answer within its timeout throws, and the caller lets the request through.</remarks>
    ValueTask<long> AddAsync(StoreKey key, ulong value, DateTimeOffset windowStart, TimeSpan period, CancellationToken cancellationToken = default);
}
