using System.Diagnostics.Metrics;
using Floodgate.Abuse;
using Floodgate.AspNetCore.Http;
using Floodgate.Bans;
using Floodgate.Keys;
using Floodgate.Rules;
using Microsoft.AspNetCore.Http;

namespace Floodgate.AspNetCore.Middleware;

// Distinct rules (docs/edge.md, abuse signals): counted beside the user tier, acted on once the tiers admit the request.
public sealed partial class FloodgateMiddleware
{
    private static readonly Counter<long> DistinctRefused = Meter.CreateCounter<long>("floodgate.distinct.refused", "{request}", "Requests refused by a distinct rule, by rule and action (reject, ban).");

    /// <summary>
    /// Refuses the request whose key a distinct rule found over: 429 or 403 until the window ends, or a ban of the key
    /// (its subject, or its client address) through the ban store, so every replica refuses it from then on.
    /// </summary>
    private async ValueTask RefuseDistinctAsync(HttpContext context, HttpRequestContext request, DistinctVerdict verdict, CompiledSettings settings, RateLimitStep? step)
    {
        var rule = verdict.Rule!;
        var counting = verdict.Counting!;
        var now = _time.GetUtcNow();
        if (counting.Action == DistinctAction.Ban && _runtime.Engine.Bans is { } bans && BanTarget(rule, request, settings) is var (kind, target))
        {
            step?.Finish("banned", default);
            DistinctRefused.Add(1, new KeyValuePair<string, object?>("rule", rule.Name), new KeyValuePair<string, object?>("action", "ban"));
            var ban = new Ban(kind, target, rule.Name, now, now + counting.BanDuration);
            try
            {
                // Awaited: the next request, on any replica, must find it. A store that fails still refuses this one.
                if (!await bans.AddAsync(ban, CancellationToken.None).ConfigureAwait(false))
                {
                    BansUnlisted.Add(1, new KeyValuePair<string, object?>("reason", "full"));
                }
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                BansUnlisted.Add(1, new KeyValuePair<string, object?>("reason", "store"));
            }

            BansStarted.Add(1, new KeyValuePair<string, object?>("rule", rule.Name));
            var who = kind == BanKind.Subject ? "This subject" : "This client";
            await RateLimitResponses.WriteBanAsync(context, rule.Name, counting.BanDuration, settings.Rejections, _problems, $"{who} went over the distinct rule '{rule.Name}' and is banned").ConfigureAwait(false);
            return;
        }

        // Reject (or a ban with no ban store, or no target to ban: refused until the window ends).
        step?.Finish("rejected", default);
        DistinctRefused.Add(1, new KeyValuePair<string, object?>("rule", rule.Name), new KeyValuePair<string, object?>("action", "reject"));
        var status = counting.Action == DistinctAction.Ban ? 403 : counting.RejectStatus;
        var detail = $"Too many distinct {Describe(counting)} for one caller under the rule '{rule.Name}'.";
        await RateLimitResponses.WriteDistinctAsync(context, rule.Name, status, verdict.WindowEnd - now, detail, settings.Rejections, _problems).ConfigureAwait(false);
    }

    /// <summary>What a ban of the rule's key names: the subject, or the client address (an IPv6 client's network); none for a trusted proxy's own address.</summary>
    private static (BanKind Kind, string Target)? BanTarget(RateLimitRule rule, HttpRequestContext request, CompiledSettings settings)
    {
        if (rule.Key is not [var part])
        {
            return null;
        }

        if (part.Kind == KeyPartKind.Subject && request.Subject is { } subject && Ban.TryCanonical(BanKind.Subject, subject, out var canonical, out _))
        {
            return (BanKind.Subject, canonical);
        }

        if (part.Kind == KeyPartKind.ClientIp && request.ClientIp is { } ip && IsBannable(ip, settings))
        {
            var name = ClientAddress.Name(ip, settings.Policy.Ipv6PrefixLength);
            var kind = name.Contains('/', StringComparison.Ordinal) ? BanKind.Network : BanKind.Ip;
            return Ban.TryCanonical(kind, name, out var target, out _) ? (kind, target) : null;
        }

        return null;
    }

    private static string Describe(DistinctCounting counting) => counting.Of.Kind switch
    {
        KeyPartKind.ClientIp => counting.Ipv4Prefix < 32 || counting.Ipv6Prefix < 128 ? "networks" : "client addresses",
        KeyPartKind.Subject => "subjects",
        _ => $"'{counting.Of}' values",
    };
}
