using System.Net;
using Microsoft.IdentityModel.Tokens;

namespace Floodgate.Gateway.Tests;

/// <summary>
/// A token the gateway has validated before is decided edge through global at once; the answers are those of the
/// edge-first path, on the embedded store and on a real Redis.
/// </summary>
public sealed class KnownIdentityTests
{
    private const string Rules = """
        edge:
          - name: ip-flood
            limit: 4/min
            ban: 60s
        user:
          - name: per-user
            match: { path: /limited }
            limit: 2/min
        """;

    [Fact]
    public async Task A_cached_token_meets_every_tier_in_order_and_an_edge_rejection_bans_the_ip()
    {
        await using var gate = await TestGateway.StartAsync("upstream: {upstream}\n{identity}\n" + Rules);

        await AssertTiersInOrderAsync(gate, exact: true);
    }

    [Fact]
    public async Task A_cached_token_meets_every_tier_in_order_on_redis()
    {
        using var redis = RedisServer.Start();
        await using var gate = await StartOnRedisAsync(redis, "{identity}\n" + Rules);

        // Redis decides on its own clock, which the test does not hold still: times are checked to within seconds.
        await AssertTiersInOrderAsync(gate, exact: false);
    }

    [Fact]
    public async Task A_cached_token_costs_one_redis_call_for_every_tier()
    {
        using var redis = RedisServer.Start();
        await using var gate = await StartOnRedisAsync(redis, """
            {identity}
            edge:
              - name: ip-flood
                limit: 1000/min
            user:
              - name: per-user
                limit: 1000/min
            global:
              - name: everything
                limit: 1000/min
            """);
        var alice = gate.Identity.CreateToken(subject: "alice", now: gate.Time.GetUtcNow());

        // The first request validates the token: the edge is decided alone first, then the other tiers.
        Statuses.Expect([200], await gate.StatusesAsync(1, "/free", alice));
        Assert.Equal(2, ScriptCalls(redis));

        // Then each request is one call: three tiers, three identities, on a single node.
        Statuses.Expect([200, 200, 200, 200, 200], await gate.StatusesAsync(5, "/free", alice));
        Assert.Equal(7, ScriptCalls(redis));
    }

    [Fact]
    public async Task With_a_ban_a_cached_token_still_costs_one_redis_call_and_a_banned_ip_charges_no_tier()
    {
        using var redis = RedisServer.Start();
        await using var gate = await StartOnRedisAsync(redis, """
            trusted_proxies: [127.0.0.0/8]
            {identity}
            edge:
              - name: ip-flood
                limit: 4/min
                ban: 60s
            user:
              - name: per-user
                limit: 6/min
            global:
              - name: everything
                limit: 1000/min
            """);
        var alice = gate.Identity.CreateToken(subject: "alice", now: gate.Time.GetUtcNow());
        const string Banned = "198.51.100.20";

        // The first request validates the token: the ban's probe and the edge in one call, then the other tiers.
        Statuses.Expect([200], await gate.StatusesAsync(1, "/free", alice, forwardedFor: Banned));
        Assert.Equal(2, ScriptCalls(redis));

        // Then each request is one call: the ban's probe, edge, user and global together.
        for (var i = 0; i < 3; i++)
        {
            var calls = ScriptCalls(redis);
            Statuses.Expect([200], await gate.StatusesAsync(1, "/free", alice, forwardedFor: Banned));
            Assert.Equal(calls + 1, ScriptCalls(redis));
        }

        // Over the edge: one call decides the probe and the edge, which rejects; starting the ban is a second.
        using (var over = await gate.GetAsync("/free", alice, forwardedFor: Banned))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, over.StatusCode);
            Assert.Contains("\"tier\":\"edge\"", await over.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        // The ban is listed in the ban store in the background, one more script call (docs/admin.md, bans).
        // A version poll racing that write may reload the replica's mirror once (one more call); neither is a decision's.
        Assert.True(await Eventually.HoldsAsync(() => Task.FromResult(gate.Host.Runtime.Bans.TryFind(System.Net.IPAddress.Parse(Banned), out _)), TimeSpan.FromSeconds(5)));
        await Task.Delay(300);
        var listed = ScriptCalls(redis);
        Assert.InRange(listed, 8, 9);

        // Banned: the listed ban answers before any store call, so neither the edge nor alice's user budget is charged,
        // and a banned request costs no call at all.
        for (var i = 0; i < 3; i++)
        {
            using var banned = await gate.GetAsync("/free", alice, forwardedFor: Banned);
            Assert.Equal(HttpStatusCode.TooManyRequests, banned.StatusCode);
            AssertSeconds(60, banned.Header("Retry-After"), exact: false);
            Assert.Contains("banned", await banned.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            Assert.Null(banned.Header("RateLimit"));
        }

        // Listed, the ban is found in the local mirror before any store call: banned requests cost no call at all.
        Assert.Equal(listed, ScriptCalls(redis));

        // From another IP alice has exactly the 2 of her 6 that the 4 admitted requests left.
        Statuses.Expect([200, 200, 429], await gate.StatusesAsync(3, "/free", alice, forwardedFor: "198.51.100.21"));
        Assert.Equal(listed + 3, ScriptCalls(redis));
        using (var user = await gate.GetAsync("/free", alice, forwardedFor: "198.51.100.21"))
        {
            Assert.Contains("\"tier\":\"user\"", await user.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        Assert.Equal(6, gate.Upstream.Hits);
    }

    /// <summary>
    /// A gateway whose store is <paramref name="redis"/>, strict, with <paramref name="policy"/> after the store line;
    /// the server's command counts start from zero once the gateway's overrides, API keys and bans are loaded (one
    /// script call each at start).
    /// </summary>
    private static async Task<TestGateway> StartOnRedisAsync(RedisServer redis, string policy)
    {
        var gate = await TestGateway.StartAsync(
            "upstream: {upstream}\n" +
            $"store: {{ kind: redis, configuration: \"{redis.Configuration}\", on_failure: closed, timeout: 2s }}\n" +
            policy);
        // Every mirror beside the store (overrides, API keys, bans) makes one script call at start: all of them are
        // waited for, or one made late under load would be counted as a request's.
        var runtime = gate.Host.Runtime;
        var loads = Task.WhenAll(
            ((Floodgate.Redis.RedisOverrideStore)runtime.Overrides).Ready,
            ((Floodgate.Redis.RedisApiKeyStore)runtime.ApiKeys.Current).Ready,
            ((Floodgate.Redis.RedisBanStore)runtime.Bans).Ready);
        if (await Task.WhenAny(loads, Task.Delay(TimeSpan.FromSeconds(10))) != loads || ScriptCalls(redis) < 3)
        {
            await gate.DisposeAsync();
            Assert.Fail("The gateway never loaded its overrides, API keys and bans from Redis.");
        }

        redis.Cli("CONFIG", "RESETSTAT");
        return gate;
    }

    /// <summary>The EVALSHA and EVAL calls the server has run, from INFO commandstats.</summary>
    private static long ScriptCalls(RedisServer redis)
    {
        var calls = 0L;
        foreach (var line in redis.Cli("INFO", "commandstats").Split('\n'))
        {
            if (line.StartsWith("cmdstat_evalsha:", StringComparison.Ordinal) || line.StartsWith("cmdstat_eval:", StringComparison.Ordinal))
            {
                var start = line.IndexOf("calls=", StringComparison.Ordinal) + "calls=".Length;
                calls += long.Parse(line[start..line.IndexOf(',', start)], System.Globalization.CultureInfo.InvariantCulture);
            }
        }

        return calls;
    }

    [Fact]
    public async Task Forged_tokens_are_counted_by_the_edge_until_it_bans_the_ip_even_once_a_token_is_cached()
    {
        await using var gate = await TestGateway.StartAsync("upstream: {upstream}\n{identity}\n" + Rules);
        var now = gate.Time.GetUtcNow();
        var alice = gate.Identity.CreateToken(subject: "alice", now: now);
        var forged = gate.Identity.Sign(new SigningCredentials(new RsaSecurityKey(TestIdentityProvider.PooledRsa(42)) { KeyId = TestIdentityProvider.RsaKeyId }, SecurityAlgorithms.RsaSha256), now: now);

        Statuses.Expect([200, 200], await gate.StatusesAsync(2, "/free", alice));
        Statuses.Expect([401, 401], await gate.StatusesAsync(2, "/free", forged));
        using (var over = await gate.GetAsync("/free", forged))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, over.StatusCode);
            Assert.Contains("\"tier\":\"edge\"", await over.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        // The IP is banned, whatever token it sends.
        using var banned = await gate.GetAsync("/free", alice);
        Assert.Equal(HttpStatusCode.TooManyRequests, banned.StatusCode);
        Assert.Contains("banned", await banned.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(2, gate.Upstream.Hits);
    }

    /// <summary>
    /// With <see cref="Rules"/>: the first request validates the token, edge first; the next ones are decided at once,
    /// and answer as the edge-first path would: a user rejection charges the edge and bans nobody, an edge rejection
    /// bans the IP. The times are exact when the store decides on the test's clock.
    /// </summary>
    private static async Task AssertTiersInOrderAsync(TestGateway gate, bool exact)
    {
        var alice = gate.Identity.CreateToken(subject: "alice", now: gate.Time.GetUtcNow());

        using (var first = await gate.GetAsync("/limited", alice))
        {
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
            AssertState("\"per-user\";r=1", 30, first, exact);
        }

        using (var second = await gate.GetAsync("/limited", alice))
        {
            Assert.Equal(HttpStatusCode.OK, second.StatusCode);
            AssertState("\"per-user\";r=0", 60, second, exact);
        }

        using (var third = await gate.GetAsync("/limited", alice))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, third.StatusCode);
            AssertSeconds(30, third.Header("Retry-After"), exact);
            Assert.Contains("\"tier\":\"user\"", await third.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        // Three requests charged the edge, the one the user tier rejected included; that rejection banned nobody.
        using (var free = await gate.GetAsync("/free", alice))
        {
            Assert.Equal(HttpStatusCode.OK, free.StatusCode);
            AssertState("\"ip-flood\";r=0", 60, free, exact);
        }

        using (var over = await gate.GetAsync("/free", alice))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, over.StatusCode);
            AssertState("\"ip-flood\";r=0", 60, over, exact);
            AssertSeconds(15, over.Header("Retry-After"), exact);
            Assert.Contains("\"tier\":\"edge\"", await over.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        using (var banned = await gate.GetAsync("/free"))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, banned.StatusCode);
            AssertSeconds(60, banned.Header("Retry-After"), exact);
            Assert.Contains("banned", await banned.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        Assert.Equal(3, gate.Upstream.Hits);
    }

    /// <summary>Checks a <c>RateLimit</c> header: <paramref name="state"/> exactly, then <c>;t=</c> and the reset.</summary>
    private static void AssertState(string state, int reset, HttpResponseMessage response, bool exact)
    {
        var header = response.Header("RateLimit");
        Assert.NotNull(header);
        Assert.StartsWith(state + ";t=", header, StringComparison.Ordinal);
        AssertSeconds(reset, header[(state.Length + 3)..], exact);
    }

    private static void AssertSeconds(int expected, string? actual, bool exact)
    {
        Assert.NotNull(actual);
        var seconds = int.Parse(actual, System.Globalization.CultureInfo.InvariantCulture);
        if (exact)
        {
            Assert.Equal(expected, seconds);
        }
        else
        {
            Assert.InRange(seconds, expected - 5, expected);
        }
    }
}
