using System.Threading.RateLimiting;
using Floodgate.Stores;

namespace Floodgate.RateLimiting;

/// <summary>
/// A lease from a Floodgate limiter. Acquired leases without a concurrency permit are one shared instance, so a
/// successful acquisition on the in-memory store allocates nothing.
/// </summary>
internal sealed class FloodgateLease : RateLimitLease
{
    public const string PendingReason = "The store needs a round trip to decide; call AcquireAsync.";

    private static readonly string[] FailedNames = [MetadataName.RetryAfter.Name, MetadataName.ReasonPhrase.Name];
    private static readonly string[] NoNames = [];

    private readonly IRateLimitStore? _store;
    private readonly RateLimitCheck _check;
    private readonly long _leaseId;
    private readonly TimeSpan? _retryAfter;
    private readonly string? _reason;
    private int _disposed;

    private FloodgateLease(bool acquired, TimeSpan? retryAfter, string? reason, IRateLimitStore? store, RateLimitCheck check, long leaseId)
    {
        IsAcquired = acquired;
        _retryAfter = retryAfter;
        _reason = reason;
        _store = store;
        _check = check;
        _leaseId = leaseId;
    }

    public static FloodgateLease Acquired { get; } = new(true, null, null, null, default, 0);

    public static FloodgateLease Pending { get; } = new(false, null, PendingReason, null, default, 0);

    public override bool IsAcquired { get; }

    public override IEnumerable<string> MetadataNames => IsAcquired ? NoNames : FailedNames;

    public static FloodgateLease Holding(IRateLimitStore store, RateLimitCheck check, long leaseId) =>
        new(true, null, null, store, check, leaseId);

    public static FloodgateLease Rejected(in CheckDecision decision) =>
        decision.IsPermanent
            ? new(false, null, $"The cost is more than the limit '{decision.Limit}' can ever grant.", null, default, 0)
            : new(false, decision.RetryAfter, $"Over the limit '{decision.Limit}'.", null, default, 0);

    public override bool TryGetMetadata(string metadataName, out object? metadata)
    {
        if (metadataName == MetadataName.RetryAfter.Name && _retryAfter is { } retry)
        {
            metadata = retry;
            return true;
        }

        if (metadataName == MetadataName.ReasonPhrase.Name && _reason is not null)
        {
            metadata = _reason;
            return true;
        }

        metadata = null;
        return false;
    }

    protected override void Dispose(bool disposing)
    {
        if (_store is null || Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        // Releasing a concurrency permit: a remote store's release runs in the background; the lease timeout
        // reclaims the permit if it never arrives.
        var release = _store.ReleaseAsync(_check, _leaseId);
        if (!release.IsCompletedSuccessfully)
        {
            _ = ObserveAsync(release);
        }
    }

    private static async Task ObserveAsync(ValueTask release)
    {
        try
        {
            await release.ConfigureAwait(false);
        }
        catch (Exception)
        {
            // The lease expires by itself; there is no caller left to tell.
        }
    }
}
