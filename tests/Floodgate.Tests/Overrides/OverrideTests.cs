using Floodgate.Engine;
using Floodgate.Limits;
using Floodgate.Overrides;
using Floodgate.Rules;
using Floodgate.Stores;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.Tests.Overrides;

[Collection(AllocationCollection.Name)]
public sealed class OverrideTests
{
    private static readonly FakeTimeProvider Time = new(new DateTimeOffset(2026, 1, 5, 12, 0, 0, TimeSpan.Zero));

    private static RateLimitRule PerUser(LimitAlgorithm algorithm = LimitAlgorithm.FixedWindow) => new(
        "per-user",
        RateLimitTier.User,
        new Dictionary<string, Limit>
        {
            ["free"] = Make(algorithm, Rate.Parse("3/min")),
            ["pro"] = Make(algorithm, Rate.Parse("10/min")),
        },
        "free");

    private static Limit Make(LimitAlgorithm algorithm, Rate rate) => algorithm switch
    {
        LimitAlgorithm.Gcra => Limit.Gcra(rate),
        LimitAlgorithm.SlidingWindow => Limit.SlidingWindow(rate),
        _ => Limit.FixedWindow(rate),
    };

    private static (RateLimitEngine Engine, MemoryOverrideStore Overrides) Create(params RateLimitRule[] rules)
    {
        var time = new FakeTimeProvider(Time.GetUtcNow());
        var overrides = new MemoryOverrideStore(time);
        var engine = new RateLimitEngine(new RateLimitPolicy(rules), new MemoryStore(null, time), time) { Overrides = overrides };
        return (engine, overrides);
    }

    private static async Task<int> AdmittedAsync(RateLimitEngine engine, string subject, string? plan, int attempts)
    {
        var admitted = 0;
        for (var i = 0; i < attempts; i++)
        {
            if ((await engine.EvaluateAsync(new RequestContext { Subject = subject, Plan = plan })).IsAllowed)
            {
                admitted++;
            }
        }

        return admitted;
    }

    [Theory]
    [InlineData(LimitAlgorithm.FixedWindow)]
    [InlineData(LimitAlgorithm.SlidingWindow)]
    public async Task A_plan_change_mid_window_keeps_the_counters_and_grants_the_new_plans_remaining_allowance_at_once(LimitAlgorithm algorithm)
    {
        var (engine, overrides) = Create(PerUser(algorithm));

        Assert.Equal(3, await AdmittedAsync(engine, "alice", null, 5));
        await overrides.SetAsync(new RateLimitOverride("alice", "pro"));

        // Pro allows 10 a minute: the 3 used are kept, so 7 more, not 10.
        Assert.Equal(7, await AdmittedAsync(engine, "alice", null, 20));
    }

    [Fact]
    public async Task On_gcra_a_plan_change_keeps_the_state_as_a_time_so_the_new_rate_refills_it()
    {
        var (engine, overrides) = Create(PerUser(LimitAlgorithm.Gcra));
        Assert.Equal(3, await AdmittedAsync(engine, "erin", null, 5));

        // Gcra's state is when the bucket is full again (60 s away at free's 3/min), not a count: pro's 6 s interval
        // reads it as all 10 spent, so pro's allowance comes back at pro's rate, a request every 6 s.
        await overrides.SetAsync(new RateLimitOverride("erin", "pro"));
        Assert.Equal(0, await AdmittedAsync(engine, "erin", null, 1));
    }

    [Fact]
    public async Task A_decision_with_an_override_found_or_not_allocates_nothing()
    {
        var huge = Limit.Gcra(new Rate(1_000_000, 1, RateUnit.Second), burst: 1_000_000_000);
        var rule = new RateLimitRule("per-user", RateLimitTier.User, new Dictionary<string, Limit> { ["free"] = huge, ["pro"] = Limit.FixedWindow(new Rate(1_000_000, 1, RateUnit.Second)) }, "free");
        var (engine, overrides) = Create(rule);
        await overrides.SetAsync(new RateLimitOverride("hit", "pro"));
        await overrides.SetAsync(new RateLimitOverride("rated", null, new Dictionary<string, Rate> { ["per-user"] = new(2_000_000, 1, RateUnit.Second) }, Time.GetUtcNow().AddDays(1)));
        await overrides.SetAsync(RateLimitOverride.ForAccount("acme", "pro"));
        var acme = new Dictionary<string, string> { [RateLimitOverride.AccountClaim] = "acme" };
        var globex = new Dictionary<string, string> { [RateLimitOverride.AccountClaim] = "globex" };
        RequestContext[] requests =
        [
            new() { Subject = "claim", Plan = "pro" }, new() { Subject = "hit" }, new() { Subject = "rated" }, new() { Subject = "miss" },
            new() { Subject = "member", Claims = acme }, new() { Subject = "outsider", Claims = globex },
        ];
        foreach (var request in requests)
        {
            Assert.True(DecideNow(engine, request).IsAllowed);
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 3_000; i++)
        {
            _ = DecideNow(engine, requests[i % requests.Length]);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public async Task Precedence_is_the_override_then_the_plan_claim_then_the_default_plan()
    {
        var (engine, overrides) = Create(PerUser());

        Assert.Equal(3, await AdmittedAsync(engine, "default", null, 20));
        Assert.Equal(10, await AdmittedAsync(engine, "claimed", "pro", 20));
        await overrides.SetAsync(new RateLimitOverride("overridden", "free"));
        Assert.Equal(3, await AdmittedAsync(engine, "overridden", "pro", 20));
    }

    [Fact]
    public async Task A_rules_rate_override_replaces_the_plans_rate_for_that_subject_only()
    {
        var (engine, overrides) = Create(PerUser());
        await overrides.SetAsync(new RateLimitOverride("bob", null, new Dictionary<string, Rate> { ["per-user"] = Rate.Parse("5/min") }));

        Assert.Equal(5, await AdmittedAsync(engine, "bob", null, 20));
        Assert.Equal(3, await AdmittedAsync(engine, "carol", null, 20));
    }

    [Fact]
    public async Task An_override_with_an_expiry_lapses_on_time()
    {
        var time = new FakeTimeProvider(Time.GetUtcNow());
        var overrides = new MemoryOverrideStore(time);
        var engine = new RateLimitEngine(new RateLimitPolicy([PerUser()]), new MemoryStore(null, time), time) { Overrides = overrides };
        await overrides.SetAsync(new RateLimitOverride("dana", "pro", expiresAt: time.GetUtcNow().AddSeconds(30)));
        Assert.Equal(10, await AdmittedAsync(engine, "dana", null, 12));

        Assert.True(overrides.TryFind("dana", out _));
        time.Advance(TimeSpan.FromSeconds(29.999));
        Assert.True(overrides.TryFind("dana", out _));
        time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.False(overrides.TryFind("dana", out _));
        Assert.Null(await overrides.GetAsync("dana"));

        // Free again, with the 10 used under pro still counted in this minute; the next minute admits free's 3.
        Assert.Equal(0, await AdmittedAsync(engine, "dana", null, 5));
        time.Advance(TimeSpan.FromSeconds(30));
        Assert.Equal(3, await AdmittedAsync(engine, "dana", null, 5));
    }

    [Fact]
    public async Task An_anonymous_caller_named_after_its_address_is_never_overridden()
    {
        var (engine, overrides) = Create(PerUser());
        await overrides.SetAsync(new RateLimitOverride("203.0.113.9", "pro"));

        var admitted = 0;
        for (var i = 0; i < 20; i++)
        {
            admitted += (await engine.EvaluateAsync(new AnonymousRequest("203.0.113.9"))).IsAllowed ? 1 : 0;
        }

        Assert.Equal(3, admitted);
    }

    [Fact]
    public async Task Overrides_list_by_subject_a_page_at_a_time_and_skip_lapsed_ones()
    {
        var time = new FakeTimeProvider(Time.GetUtcNow());
        var overrides = new MemoryOverrideStore(time);
        foreach (var name in new[] { "c", "a", "b", "d" })
        {
            await overrides.SetAsync(new RateLimitOverride(name, "pro", expiresAt: name == "d" ? time.GetUtcNow().AddSeconds(1) : null));
        }

        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(["a", "b"], (await overrides.ListAsync(null, 2)).Select(o => o.Subject));
        Assert.Equal(["c"], (await overrides.ListAsync("b", 2)).Select(o => o.Subject));
    }

    [Fact]
    public void An_override_round_trips_through_its_json()
    {
        var value = new RateLimitOverride("a/b\"c", "pro", new Dictionary<string, Rate> { ["per-user"] = Rate.Parse("1000/min") }, DateTimeOffset.FromUnixTimeMilliseconds(1_767_225_600_123));
        var read = OverrideJson.Read(OverrideJson.Write(value))!;
        Assert.Equal(value.Subject, read.Subject);
        Assert.Equal("pro", read.Plan);
        Assert.Equal(Rate.Parse("1000/min"), read.Rates["per-user"]);
        Assert.Equal(value.ExpiresAt, read.ExpiresAt);
        Assert.Null(OverrideJson.Read("{not json"));
        Assert.Null(OverrideJson.Read("""{"subject":"x"}"""));
    }

    [Fact]
    public void An_override_must_name_a_subject_within_the_limit_and_set_something()
    {
        Assert.Throws<ArgumentException>(() => new RateLimitOverride(new string('s', RateLimitOverride.MaxSubjectLength + 1), "pro"));
        Assert.Throws<ArgumentException>(() => new RateLimitOverride("x", null));
        Assert.Throws<ArgumentException>(() => new RateLimitOverride("x", string.Empty));
    }

    [Fact]
    public void WithRate_keeps_the_algorithm_and_an_explicit_burst()
    {
        var gcra = Limit.Gcra(Rate.Parse("10/min"), burst: 2).WithRate(Rate.Parse("20/min"));
        Assert.Equal(LimitAlgorithm.Gcra, gcra.Algorithm);
        Assert.Equal(2, gcra.Burst);
        Assert.Equal(40, Limit.Gcra(Rate.Parse("10/min")).WithRate(Rate.Parse("40/min")).Burst);
        Assert.Equal(LimitAlgorithm.SlidingWindow, Limit.SlidingWindow(Rate.Parse("10/min")).WithRate(Rate.Parse("5/s")).Algorithm);
        Assert.Equal(7, Limit.Concurrency(3).WithRate(new Rate(7, 1, RateUnit.Second)).Amount);
    }

    /// <summary>A decision the memory store completes at once.</summary>
    private static RateLimitResult DecideNow(RateLimitEngine engine, RequestContext request)
    {
        var pending = engine.EvaluateAsync(request, RateLimitTier.User, RateLimitTier.User);
        Assert.True(pending.IsCompletedSuccessfully);
        return pending.Result;
    }

    private sealed class AnonymousRequest(string address) : IRequestContext, IAnonymousSubject
    {
        public string Method => "GET";

        public string Path => "/";

        public string? Host => null;

        public string? RouteTemplate => null;

        public System.Net.IPAddress? ClientIp => System.Net.IPAddress.Parse(address);

        public string? Subject => address;

        public string? Plan => null;

        public bool IsAnonymousSubject => true;

        public string? GetHeader(string name) => null;

        public string? GetClaim(string name) => null;
    }
}
