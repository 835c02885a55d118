using Floodgate.AspNetCore.Identity;
using Floodgate.AspNetCore.Http;
using Floodgate.Bans;
using Microsoft.AspNetCore.Http;

namespace Floodgate.AspNetCore.Middleware;

// Bans set at runtime (the admin API's, and the edge rules' bans listed with them): local lookups, no store call.
public sealed partial class FloodgateMiddleware
{
    /// <summary>The ban in force on the request's client address or a network holding it; none for a trusted proxy's own address.</summary>
    private static Ban? FindAddressBan(IBanStore? bans, HttpRequestContext request, CompiledSettings settings) =>
        bans is not null && request.ClientIp is { } ip && IsBannable(ip, settings) && bans.TryFind(ip, out var ban) ? ban : null;

    /// <summary>The ban in force on the request's subject.</summary>
    private static Ban? FindSubjectBan(IBanStore? bans, in IdentityResult identity) =>
        bans is not null && identity.Subject is { } subject && bans.TryFindSubject(subject, out var ban) ? ban : null;

    /// <summary>
    /// Lists the ban an edge rule just started on <paramref name="client"/> (an address, or an IPv6 client's network) in
    /// the ban store, so it shows with the others and can be lifted. In the background: the rejection does not wait for
    /// it, and a failure to list it changes nothing of the ban itself, which is the rule's store key.
    /// </summary>
    private void ListBan(IBanStore? bans, BanRule rule, string client)
    {
        if (bans is null)
        {
            return;
        }

        var now = _time.GetUtcNow();
        var listed = new Ban(client.Contains('/', StringComparison.Ordinal) ? BanKind.Network : BanKind.Ip, client, rule.Rule.Name, now, now + rule.Duration);
        _ = Task.Run(async () =>
        {
            try
            {
                if (!await bans.AddAsync(listed).ConfigureAwait(false))
                {
                    BansUnlisted.Add(1, new KeyValuePair<string, object?>("reason", "full"));
                }
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                BansUnlisted.Add(1, new KeyValuePair<string, object?>("reason", "store"));
            }
        });
    }

    private static bool IsDistinctRule(CompiledSettings settings, string name)
    {
        foreach (var rule in settings.Policy.DistinctRules)
        {
            if (rule.Name == name)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Answers a banned request as an edge ban is answered, with the time the ban has left.</summary>
    private ValueTask RefuseBannedAsync(HttpContext context, Ban ban, CompiledSettings settings, RateLimitStep? step)
    {
        step?.Finish("banned", default);
        Banned.Add(1, new KeyValuePair<string, object?>("rule", ban.Source));
        var remaining = ban.ExpiresAt - _time.GetUtcNow();
        var banned = ban.Source == Ban.AdminSource
            ? (ban.Kind == BanKind.Subject ? "This subject is banned" : "This client is banned")
            : IsDistinctRule(settings, ban.Source) ? $"{(ban.Kind == BanKind.Subject ? "This subject" : "This client")} went over the distinct rule '{ban.Source}' and is banned"
            : $"This client went over the edge rule '{ban.Source}' and is banned";
        return RateLimitResponses.WriteBanAsync(context, ban.Source, remaining, settings.Rejections, _problems, banned);
    }
}
