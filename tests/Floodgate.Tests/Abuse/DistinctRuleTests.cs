using System.Net;
using Floodgate.Abuse;
using Floodgate.Engine;
using Floodgate.Events;
using Floodgate.Limits;
using Floodgate.Rules;
using Floodgate.Stores;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.Tests.Abuse;

public sealed class DistinctRuleTests
{
    private static readonly DateTimeOffset Start = new(2026, 1, 5, 12, 0, 0, TimeSpan.Zero);

    private static RateLimitRule IpsPerSubject(DistinctAction action = DistinctAction.Reject, int v4 = 32, RuleMode mode = RuleMode.Enforce) =>
        new("ips-per-key", RateLimitTier.User, Limit.FixedWindow(Rate.Parse("3/hour")))
        {
            Key = [KeyPart.Subject],
            Distinct = new DistinctCounting { Of = KeyPart.ClientIp, Ipv4Prefix = v4, Action = action },
            Mode = mode,
        };

    private static RequestContext From(string subject, string ip) => new() { Subject = subject, ClientIp = IPAddress.Parse(ip) };

    private static (RateLimitEngine Engine, FakeTimeProvider Time) Make(params RateLimitRule[] rules)
    {
        var time = new FakeTimeProvider(Start);
        var engine = new RateLimitEngine(new RateLimitPolicy(rules), new MemoryStore(null, time), time);
        return (engine, time);
    }

    [Fact]
    public async Task A_subject_over_its_distinct_addresses_is_over_until_the_window_ends()
    {
        var (engine, time) = Make(IpsPerSubject());
        for (var i = 1; i <= 3; i++)
        {
            Assert.False((await engine.CountDistinctAsync(engine.Policy, From("alice", $"198.51.100.{i}"))).IsOver);
            Assert.False((await engine.CountDistinctAsync(engine.Policy, From("alice", $"198.51.100.{i}"))).IsOver);
        }

        var over = await engine.CountDistinctAsync(engine.Policy, From("alice", "198.51.100.4"));
        Assert.True(over.IsOver);
        Assert.Equal(4, over.Count);
        Assert.Equal("ips-per-key", over.Rule!.Name);
        Assert.Equal(Start + TimeSpan.FromHours(1), over.WindowEnd);

        // Every request of the key is over now, even from an address it had used; another subject is not.
        Assert.True((await engine.CountDistinctAsync(engine.Policy, From("alice", "198.51.100.1"))).IsOver);
        Assert.False((await engine.CountDistinctAsync(engine.Policy, From("bob", "198.51.100.4"))).IsOver);

        // A new window starts over.
        time.Advance(TimeSpan.FromHours(1));
        Assert.False((await engine.CountDistinctAsync(engine.Policy, From("alice", "198.51.100.9"))).IsOver);
    }

    [Fact]
    public async Task Networks_count_as_one_value()
    {
        var (engine, _) = Make(IpsPerSubject(v4: 24));
        for (var i = 1; i <= 50; i++)
        {
            Assert.False((await engine.CountDistinctAsync(engine.Policy, From("alice", $"198.51.100.{i}"))).IsOver);
        }

        await engine.CountDistinctAsync(engine.Policy, From("alice", "198.51.101.1"));
        await engine.CountDistinctAsync(engine.Policy, From("alice", "198.51.102.1"));
        Assert.True((await engine.CountDistinctAsync(engine.Policy, From("alice", "198.51.103.1"))).IsOver);
    }

    [Fact]
    public async Task Subjects_per_address_catch_credential_stuffing()
    {
        var rule = new RateLimitRule("subjects-per-ip", RateLimitTier.User, Limit.FixedWindow(Rate.Parse("5/10min")))
        {
            Key = [KeyPart.ClientIp],
            Distinct = new DistinctCounting { Of = KeyPart.Subject, Action = DistinctAction.Ban, BanDuration = TimeSpan.FromMinutes(30) },
        };
        var (engine, _) = Make(rule);
        for (var i = 0; i < 5; i++)
        {
            Assert.False((await engine.CountDistinctAsync(engine.Policy, From($"user{i}", "203.0.113.50"))).IsOver);
        }

        var over = await engine.CountDistinctAsync(engine.Policy, From("user5", "203.0.113.50"));
        Assert.True(over.IsOver);
        Assert.Equal(DistinctAction.Ban, over.Counting!.Action);
    }

    [Fact]
    public async Task Flagging_and_shadow_rules_never_reject_but_raise_one_event_per_key_and_window()
    {
        var observer = new Events();
        var (engine, _) = Make(IpsPerSubject(DistinctAction.Flag));
        engine.ThresholdObserver = observer;
        for (var i = 1; i <= 10; i++)
        {
            Assert.False((await engine.CountDistinctAsync(engine.Policy, From("alice", $"198.51.100.{i}"))).IsOver);
        }

        var crossing = Assert.Single(observer.Crossings);
        Assert.Equal("alice", crossing.Subject);
        Assert.Equal(100, crossing.Percent);
        Assert.Equal(4, crossing.Used);
        Assert.Equal(3, crossing.Limit);
        Assert.Equal(Start, crossing.PeriodStart);

        var (shadow, _) = Make(IpsPerSubject(mode: RuleMode.Shadow));
        for (var i = 1; i <= 10; i++)
        {
            Assert.False((await shadow.CountDistinctAsync(shadow.Policy, From("alice", $"198.51.100.{i}"))).IsOver);
        }
    }

    [Fact]
    public async Task Distinct_rules_are_not_decided_with_the_tiers()
    {
        var (engine, _) = Make(IpsPerSubject());
        for (var i = 0; i < 10; i++)
        {
            var result = await engine.EvaluateAsync(From("alice", "198.51.100.1"));
            Assert.True(result.IsAllowed);
        }

        Assert.Empty(engine.Policy.RulesOf(RateLimitTier.User).ToArray());
        Assert.Single(engine.Policy.DistinctRules.ToArray());
    }

    [Fact]
    public async Task A_request_without_the_parts_is_not_counted()
    {
        var (engine, _) = Make(IpsPerSubject());
        for (var i = 1; i <= 10; i++)
        {
            Assert.False((await engine.CountDistinctAsync(engine.Policy, new RequestContext { ClientIp = IPAddress.Parse($"198.51.100.{i}") })).IsOver);
        }
    }

    [Fact]
    public async Task A_failing_store_lets_the_request_through()
    {
        var (engine, _) = Make(IpsPerSubject());
        engine.DistinctStore = new FailingStore();
        for (var i = 1; i <= 10; i++)
        {
            Assert.False((await engine.CountDistinctAsync(engine.Policy, From("alice", $"198.51.100.{i}"))).IsOver);
        }
    }

    [Fact]
    public void Settings_refuse_what_cannot_be_counted()
    {
        Assert.Throws<ArgumentException>(() => new DistinctCounting { Of = KeyPart.Route });
        Assert.Throws<ArgumentOutOfRangeException>(() => new DistinctCounting { RejectStatus = 500 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new DistinctCounting { Ipv4Prefix = 33 });
        Assert.Throws<ArgumentException>(() => new RateLimitRule("p", RateLimitTier.User, new Dictionary<string, Limit> { ["free"] = Limit.FixedWindow(Rate.Parse("3/hour")) }, null)
        {
            Distinct = new DistinctCounting(),
        });
    }

    [Fact]
    public void Windows_are_aligned_to_the_epoch()
    {
        Assert.Equal(new DateTimeOffset(2026, 1, 5, 12, 0, 0, TimeSpan.Zero), RateLimitEngine.WindowStart(new DateTimeOffset(2026, 1, 5, 12, 59, 59, TimeSpan.Zero), TimeSpan.FromHours(1)));
        Assert.Equal(new DateTimeOffset(2026, 1, 5, 12, 10, 0, TimeSpan.Zero), RateLimitEngine.WindowStart(new DateTimeOffset(2026, 1, 5, 12, 14, 0, TimeSpan.Zero), TimeSpan.FromMinutes(10)));
    }

    [Fact]
    public void The_memory_store_stays_within_its_bound()
    {
        var store = new MemoryDistinctStore(maxKeys: 2);
        var period = TimeSpan.FromMinutes(1).Ticks;
        Assert.Equal(1, store.Add(new Floodgate.Keys.StoreKey(1, 1), 7, 0, period));
        Assert.Equal(1, store.Add(new Floodgate.Keys.StoreKey(2, 2), 7, 0, period));
        Assert.Equal(1, store.Add(new Floodgate.Keys.StoreKey(3, 3), 7, 0, period));
        Assert.Equal(1, store.Add(new Floodgate.Keys.StoreKey(3, 3), 8, 0, period));
        Assert.Equal(2, store.Count);

        // Once the held keys' windows have passed, a new key finds room.
        Assert.Equal(1, store.Add(new Floodgate.Keys.StoreKey(3, 3), 7, period, period));
        Assert.Equal(2, store.Add(new Floodgate.Keys.StoreKey(3, 3), 8, period, period));
    }

    private sealed class Events : IThresholdObserver
    {
        public List<ThresholdCrossing> Crossings { get; } = [];

        public void OnCrossed(ThresholdCrossing crossing) => Crossings.Add(crossing);
    }

    private sealed class FailingStore : IDistinctStore
    {
        public ValueTask<long> AddAsync(Floodgate.Keys.StoreKey key, ulong value, DateTimeOffset windowStart, TimeSpan period, CancellationToken cancellationToken = default) =>
            ValueTask.FromException<long>(new TimeoutException("the store is down"));
    }
}
