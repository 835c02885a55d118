using System.Buffers;
using System.Net;
using Floodgate.AspNetCore.Http;
using Floodgate.Keys;
using Floodgate.Rules;
using Floodgate.Stores;

namespace Floodgate.AspNetCore.Middleware;

// Bans the edge rules start: one store decision on the rule's ban key when a rule with a ban rejects.
public sealed partial class FloodgateMiddleware
{
    private async ValueTask StartBanAsync(CompiledSettings settings, RateLimitRule? rule, HttpRequestContext request, CancellationToken aborted)
    {
        if (rule is null || settings.Bans.Length == 0 || request.ClientIp is not { } ip || !IsBannable(ip, settings))
        {
            return;
        }

        foreach (var ban in settings.Bans)
        {
            if (ReferenceEquals(ban.Rule, rule))
            {
                var name = ClientAddress.Name(ip, settings.Policy.Ipv6PrefixLength);
                var outcome = await DecideOneAsync(ban.Check(StoreKey.Create(ban.Scope, name), 1), aborted).ConfigureAwait(false);
                if (outcome.Committed)
                {
                    BansStarted.Add(1, new KeyValuePair<string, object?>("rule", rule.Name));
                    ListBan(_runtime.Engine.Bans, ban, name);
                }

                return;
            }
        }
    }

    /// <summary>
    /// Whether <paramref name="ip"/> can be banned: not when it is in a trusted proxy range. The client IP is a trusted
    /// proxy's own address when the proxy names no client (no forwarding header, <c>for=unknown</c>, an obfuscated
    /// <c>for=_hidden</c>, <c>X-Forwarded-For: unknown</c>), and a ban there would shut out everyone behind the proxy.
    /// The edge rules still limit such requests; they just never start, nor probe, a ban.
    /// </summary>
    private static bool IsBannable(IPAddress ip, CompiledSettings settings) => !settings.Proxies.IsTrusted(ip);

    private ValueTask<StoreOutcome> DecideOneAsync(RateLimitCheck check, CancellationToken aborted)
    {
        var store = _runtime.Engine.Store;
        Span<RateLimitCheck> checks = [check];
        Span<StoreOutcome> outcomes = [default];
        if (store.TryDecide(checks, outcomes))
        {
            return new ValueTask<StoreOutcome>(outcomes[0]);
        }

        return DecideRemoteAsync(store, check, aborted);

        static async ValueTask<StoreOutcome> DecideRemoteAsync(IRateLimitStore store, RateLimitCheck check, CancellationToken aborted)
        {
            var checks = ArrayPool<RateLimitCheck>.Shared.Rent(1);
            var outcomes = ArrayPool<StoreOutcome>.Shared.Rent(1);
            try
            {
                checks[0] = check;
                await store.DecideAsync(checks.AsMemory(0, 1), outcomes.AsMemory(0, 1), aborted).ConfigureAwait(false);
                return outcomes[0];
            }
            finally
            {
                ArrayPool<RateLimitCheck>.Shared.Return(checks);
                ArrayPool<StoreOutcome>.Shared.Return(outcomes);
            }
        }
    }
}
