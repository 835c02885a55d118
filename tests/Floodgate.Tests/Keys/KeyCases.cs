using System.Net;
using Floodgate.Engine;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.RateLimiting;
using Floodgate.Rules;
using Floodgate.Stores;

namespace Floodgate.Tests.Keys;

/// <summary>
/// Requests keyed through the engine and the adapters, with the keys a store receives: every key kind (one part, several
/// with zero, one and several identity parts, an anonymous subject, a part too large for the stack), every IP form and
/// several IPv6 prefix lengths.
/// </summary>
internal static class KeyCases
{
    private static readonly Limit Limit = Limit.FixedWindow(Rate.Parse("1000/min"));

    public static async Task<List<(string Case, string Key)>> EngineKeysAsync()
    {
        var rules = new[]
        {
            new RateLimitRule("ip", RateLimitTier.Edge, Limit),
            new RateLimitRule("ip56", RateLimitTier.Edge, Limit.SlidingWindow(Rate.Parse("1000/min"))),
            new RateLimitRule("user", RateLimitTier.User, Limit) { Key = [KeyPart.Subject] },
            new RateLimitRule("user-route", RateLimitTier.User, Limit) { Key = [KeyPart.Subject, KeyPart.Route] },
            new RateLimitRule("ip-user-header", RateLimitTier.User, Limit) { Key = [KeyPart.ClientIp, KeyPart.Subject, new KeyPart(KeyPartKind.Header, "X-Tenant")] },
            new RateLimitRule("route-method", RateLimitTier.Service, Limit) { Key = [KeyPart.Route, KeyPart.Method] },
            new RateLimitRule("claim-const", RateLimitTier.Service, Limit) { Key = [new KeyPart(KeyPartKind.Claim, "org"), new KeyPart(KeyPartKind.Constant, "c")] },
            new RateLimitRule("everyone", RateLimitTier.Global, Limit.Gcra(Rate.Parse("1000/s"))) { Key = [] },
        };
        var results = new List<(string, string)>();
        foreach (var prefix in new[] { 64, 56, 60, 128 })
        {
            var store = new RecordingStore();
            var engine = new RateLimitEngine(new RateLimitPolicy(rules) { Ipv6PrefixLength = prefix }, store);
            foreach (var (name, request) in Requests())
            {
                store.Checks.Clear();
                await engine.EvaluateAsync(request);
                foreach (var check in store.Checks)
                {
                    results.Add(($"/{prefix} {name} {check.Limit}", check.Key.ToString()));
                }
            }
        }

        return results;
    }

    public static List<(string Case, string Key)> OtherKeys()
    {
        var results = new List<(string, string)>
        {
            ("create", StoreKey.Create("scope", "alice").ToString()),
            ("create-qualified", StoreKey.Create("scope", "alice", "/orders").ToString()),
            ("create-long", StoreKey.Create("scope", new string('{', 1000), new string('}', 1000)).ToString()),
        };
        var store = new RecordingStore();
        using (var limiter = new FloodgatePartitionedRateLimiter<string>(store, key => new FloodgatePartition(key, Limit), "p"))
        {
            limiter.AttemptAcquire("bob").Dispose();
        }

        using (var limiter = new FloodgateRateLimiter(store, Limit, "one"))
        {
            limiter.AttemptAcquire().Dispose();
        }

        results.AddRange(store.Checks.Select((c, i) => ($"adapter {i}", c.Key.ToString())));
        return results;
    }

    private static IEnumerable<(string, IRequestContext)> Requests()
    {
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase) { ["X-Tenant"] = "acme" };
        var claims = new Dictionary<string, string> { ["org"] = "o1" };
        foreach (var ip in new[] { "203.0.113.7", "::ffff:203.0.113.7", "2001:db8:1:2:3:4:5:6", "2001:db8:1:2:ffff::9", "2001:db8:1:3::1", "fe80::1%3" })
        {
            yield return (ip, new RequestContext { Subject = "alice", Path = "/orders/1", RouteTemplate = "/orders/{id}", Method = "POST", ClientIp = IPAddress.Parse(ip), Headers = headers, Claims = claims });
        }

        yield return ("no-subject", new RequestContext { Path = "/x", ClientIp = IPAddress.Parse("198.51.100.1") });
        yield return ("long-subject", new RequestContext { Subject = new string('{', 10_000), Path = "/x", ClientIp = IPAddress.Parse("198.51.100.1"), Headers = headers });
        yield return ("anonymous", new AnonymousRequest { Subject = "203.0.113.7", Path = "/x", ClientIp = IPAddress.Parse("203.0.113.7"), Headers = headers });
    }

    private sealed class AnonymousRequest : IRequestContext, IAnonymousSubject
    {
        public string Method { get; init; } = "GET";
        public string Path { get; init; } = "/";
        public string? Host { get; init; }
        public string? RouteTemplate { get; init; }
        public IPAddress? ClientIp { get; init; }
        public string? Subject { get; init; }
        public string? Plan { get; init; }
        public Dictionary<string, string> Headers { get; init; } = [];
        public bool IsAnonymousSubject => true;
        public string? GetHeader(string name) => Headers.TryGetValue(name, out var v) ? v : null;
        public string? GetClaim(string name) => null;
    }

    private sealed class RecordingStore() : DelegatingStore<MemoryStore>(new MemoryStore())
    {
        public List<RateLimitCheck> Checks { get; } = [];

        public override ValueTask DecideAsync(ReadOnlyMemory<RateLimitCheck> checks, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default)
        {
            Checks.AddRange(checks.ToArray());
            return Inner.DecideAsync(checks, outcomes, cancellationToken);
        }

        // Stage by stage through DecideAsync, so the checks of every stage decided are recorded.
        public override ValueTask<int> DecideStagesAsync(ReadOnlyMemory<RateLimitCheck> checks, ReadOnlyMemory<int> stageEnds, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default) =>
            DecideStagesInTurnAsync(checks, stageEnds, outcomes, cancellationToken);

        public override bool TryDecide(ReadOnlySpan<RateLimitCheck> checks, Span<StoreOutcome> outcomes)
        {
            Checks.AddRange(checks.ToArray());
            return Inner.TryDecide(checks, outcomes);
        }
    }
}
