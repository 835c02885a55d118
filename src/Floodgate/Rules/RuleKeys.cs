using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Floodgate.Keys;
using Floodgate.Limits;

namespace Floodgate.Rules;

/// <summary>Reads a rule's key parts from a request and hashes them (<see cref="KeyHasher"/>) into a <see cref="StoreKey"/>, without allocating.</summary>
[SkipLocalsInit]
internal static class RuleKeys
{
    // The tag of a subject that stands for an anonymous caller (IAnonymousSubject): outside every KeyPartKind, so no
    // validated subject, claim or header, whatever its text, hashes as an anonymous caller does.
    private const byte AnonymousSubjectTag = 0x80;

    /// <summary>Builds the key; <see langword="false"/> when the request lacks a part, so the rule does not apply.</summary>
    public static bool TryBuild(RateLimitRule rule, Limit limit, IRequestContext request, int ipv6Prefix, out StoreKey key) =>
        TryBuild(rule, limit, request, request.Plan, ipv6Prefix, out key);

    /// <summary>Builds the key with <paramref name="plan"/> as the request's plan (an override's, when one is in force).</summary>
    public static bool TryBuild(RateLimitRule rule, Limit limit, IRequestContext request, string? plan, int ipv6Prefix, out StoreKey key)
    {
        var seed = rule.KeySeed(limit.Algorithm);
        var parts = rule.Key;
        Span<byte> address = stackalloc byte[16];
        if (parts.Count == 1)
        {
            // The common key, one subject or one IP: hashed in place, nothing copied.
            var part = parts[0];
            if (!TryRead(rule, part, request, plan, ipv6Prefix, address, out var bytes, out var tag))
            {
                key = default;
                return false;
            }

            key = KeyHasher.HashPart(seed, tag, bytes, part.IsIdentity);
            return true;
        }

        // Not a using: the builder is a struct that appends to itself.
        var builder = new KeyBuilder(stackalloc byte[KeyHasher.StackBytes], stackalloc byte[KeyHasher.StackBytes]);
        try
        {
            for (var i = 0; i < parts.Count; i++)
            {
                var part = parts[i];
                if (!TryRead(rule, part, request, plan, ipv6Prefix, address, out var bytes, out var tag))
                {
                    key = default;
                    return false;
                }

                builder.Append(tag, bytes, part.IsIdentity);
            }

            key = builder.ToKey(seed);
            return true;
        }
        finally
        {
            builder.Dispose();
        }
    }

    /// <summary>Reads a part's bytes, and the tag that keeps them apart from other parts': the part's kind, or <see cref="AnonymousSubjectTag"/>.</summary>
    private static bool TryRead(RateLimitRule rule, KeyPart part, IRequestContext request, string? plan, int ipv6Prefix, Span<byte> address, out ReadOnlySpan<byte> bytes, out byte tag)
    {
        tag = part.Kind == KeyPartKind.Subject && request is IAnonymousSubject { IsAnonymousSubject: true } ? AnonymousSubjectTag : (byte)part.Kind;
        if (part.Kind == KeyPartKind.ClientIp)
        {
            if (request.ClientIp is not { } ip)
            {
                bytes = default;
                return false;
            }

            bytes = address[..ClientAddress.Write(ip, ipv6Prefix, address)];
            return true;
        }

        var text = part.Kind switch
        {
            KeyPartKind.Subject => request.Subject,
            KeyPartKind.Claim => request.GetClaim(part.Name!),
            KeyPartKind.Header => request.GetHeader(part.Name!),
            KeyPartKind.Route => rule.Match.RouteKey ?? rule.Match.Route?.Template ?? request.RouteTemplate ?? request.Path,
            KeyPartKind.Method => request.Method,
            KeyPartKind.Path => request.Path,
            KeyPartKind.Host => request.Host,
            KeyPartKind.Plan => plan ?? rule.DefaultPlan ?? string.Empty,
            _ => part.Name,
        };
        bytes = text is null ? default : MemoryMarshal.AsBytes(text.AsSpan());
        return text is not null;
    }
}
