namespace Floodgate.ApiKeys;

/// <summary>
/// A key as a store holds it for verification: its record, and when it was last used, noted in memory at each use
/// (no write per request) and written to a remote store in batches.
/// </summary>
public sealed class ApiKeyEntry
{
    // Unix milliseconds; 0 when never used. Written at most once a second per key, so busy keys share no hot line.
    private long _lastUsed;

    /// <summary>Creates an entry for <paramref name="record"/>, last used at <paramref name="lastUsedAt"/> if ever.</summary>
    public ApiKeyEntry(ApiKeyRecord record, DateTimeOffset? lastUsedAt = null)
    {
        ArgumentNullException.ThrowIfNull(record);
        Record = record;
        _lastUsed = lastUsedAt?.ToUnixTimeMilliseconds() ?? 0;
    }

    /// <summary>The record.</summary>
    public ApiKeyRecord Record { get; }

    /// <summary>When the key was last used, as far as this entry knows; <see langword="null"/> if never.</summary>
    public DateTimeOffset? LastUsedAt => Volatile.Read(ref _lastUsed) is > 0 and var at ? DateTimeOffset.FromUnixTimeMilliseconds(at) : null;

    /// <summary>Unix milliseconds of the last use; 0 if never.</summary>
    public long LastUsedUnixMilliseconds => Volatile.Read(ref _lastUsed);

    /// <summary>
    /// Notes a use at <paramref name="now"/> (or one a store recorded) when it is a second or more after the last one
    /// noted, so that repeated uses write nothing.
    /// </summary>
    public void Touch(DateTimeOffset now)
    {
        var at = now.ToUnixTimeMilliseconds();
        var last = Volatile.Read(ref _lastUsed);
        if (at - last >= 1000)
        {
            Interlocked.CompareExchange(ref _lastUsed, at, last);
        }
    }
}
