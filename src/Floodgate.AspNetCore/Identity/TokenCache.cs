using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;

namespace Floodgate.AspNetCore.Identity;

/// <summary>The SHA-256 hash of a token: the cache never holds raw tokens.</summary>
internal readonly record struct TokenHash(ulong A, ulong B, ulong C, ulong D)
{
    private const int StackLimit = 2048;

    public static TokenHash Of(ReadOnlySpan<char> token)
    {
        var max = Encoding.UTF8.GetMaxByteCount(token.Length);
        byte[]? rented = null;
        var buffer = max <= StackLimit ? stackalloc byte[StackLimit] : (rented = ArrayPool<byte>.Shared.Rent(max));
        try
        {
            var length = Encoding.UTF8.GetBytes(token, buffer);
            Span<byte> hash = stackalloc byte[32];
            SHA256.HashData(buffer[..length], hash);
            var words = MemoryMarshal.Cast<byte, ulong>(hash);
            return new TokenHash(words[0], words[1], words[2], words[3]);
        }
        finally
        {
            if (rented is not null)
                ArrayPool<byte>.Shared.Return(rented);
        }
    }
}

/// <summary>A validated token's identity, valid until <see cref="Expires"/>.</summary>
internal sealed record CachedIdentity(string Subject, string? Plan, ClaimsIdentity Claims, DateTimeOffset Expires);

/// <summary>
/// Validated tokens by hash, each until its expiry, bounded in entries: when full, expired entries are swept, then
/// about a tenth of the rest is evicted, so a flood of distinct valid tokens cannot grow the heap.
/// </summary>
internal sealed class TokenCache(int capacity)
{
    private readonly ConcurrentDictionary<TokenHash, CachedIdentity> _entries = new();
    private readonly Lock _trimLock = new();
    private int _count;

    public int Count => Volatile.Read(ref _count);

    public bool TryGet(TokenHash hash, DateTimeOffset now, out CachedIdentity identity)
    {
        if (_entries.TryGetValue(hash, out var entry))
        {
            if (entry.Expires > now)
            {
                identity = entry;
                return true;
            }

            if (_entries.TryRemove(new KeyValuePair<TokenHash, CachedIdentity>(hash, entry)))
                Interlocked.Decrement(ref _count);
        }

        identity = null!;
        return false;
    }

    public void Add(TokenHash hash, CachedIdentity identity, DateTimeOffset now)
    {
        if (capacity == 0 || identity.Expires <= now)
            return;
        if (Count >= capacity)
            Trim(now);
        if (_entries.TryAdd(hash, identity))
            Interlocked.Increment(ref _count);
    }

    private void Trim(DateTimeOffset now)
    {
        lock (_trimLock)
        {
            if (Count < capacity)
                return;
            foreach (var (key, value) in _entries)
            {
                if (value.Expires <= now && _entries.TryRemove(new KeyValuePair<TokenHash, CachedIdentity>(key, value)))
                    Interlocked.Decrement(ref _count);
            }

            var target = capacity - Math.Max(1, capacity / 10);
            foreach (var (key, _) in _entries)
            {
                if (Count <= target)
                    break;
                if (_entries.TryRemove(key, out _))
                    Interlocked.Decrement(ref _count);
            }
        }
    }
}
