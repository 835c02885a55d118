using System.Net;
using Floodgate.Engine;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Rules;
using Floodgate.Stores;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.Tests.Stores;

/// <summary>
/// <see cref="IRateLimitStore.DecideStagesAsync"/>: the memory store's own implementation and the interface's default
/// (one call per stage), synchronous and not, give the same answers.
/// </summary>
public sealed class StagedDecisionTests
{
    private static readonly DateTimeOffset Start = new(2026, 1, 15, 12, 0, 0, TimeSpan.Zero);
    private static readonly Limit TwoPerMinute = Limit.FixedWindow(Rate.Parse("2/min"));
    private static readonly Limit TenPerMinute = Limit.FixedWindow(Rate.Parse("10/min"));

    public static TheoryData<string> Stores => ["memory", "default-sync", "default-async"];

    private static IRateLimitStore Create(string kind, FakeTimeProvider time)
    {
        var memory = new MemoryStore(timeProvider: time);
        return kind switch
        {
            "memory" => memory,
            "default-sync" => new DefaultStagesStore(memory, yields: false),
            _ => new DefaultStagesStore(memory, yields: true),
        };
    }

    private static StoreKey Key(int identity) => new((UInt128)identity, ((UInt128)identity << 32) | 1);

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task A_rejecting_stage_stops_the_later_stages_which_consume_nothing(string kind)
    {
        var store = Create(kind, new FakeTimeProvider(Start));
        RateLimitCheck[] checks = [new(TwoPerMinute, Key(1), 1, false), new(TenPerMinute, Key(2), 1, false), new(TenPerMinute, Key(3), 1, false)];
        int[] ends = [1, 2, 3];
        var outcomes = new StoreOutcome[3];

        Assert.Equal(3, await store.DecideStagesAsync(checks, ends, outcomes));
        Assert.Equal(3, await store.DecideStagesAsync(checks, ends, outcomes));
        Assert.All(outcomes, o => Assert.True(o.Committed));
        Assert.Equal(8, outcomes[2].Outcome.Remaining);

        outcomes = new StoreOutcome[3];
        Assert.Equal(1, await store.DecideStagesAsync(checks, ends, outcomes));
        Assert.False(outcomes[0].Outcome.IsAllowed);
        Assert.Equal(default, outcomes[1]);
        Assert.Equal(default, outcomes[2]);

        // The later stages were not charged: a probe (cost 0) reads 8 left on each.
        RateLimitCheck[] probes = [new(TenPerMinute, Key(2), 0, false), new(TenPerMinute, Key(3), 0, false)];
        var read = new StoreOutcome[2];
        await store.DecideAsync(probes, read);
        Assert.Equal(8, read[0].Outcome.Remaining);
        Assert.Equal(8, read[1].Outcome.Remaining);
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task A_middle_stage_that_rejects_is_decided_and_the_ones_after_are_not(string kind)
    {
        var store = Create(kind, new FakeTimeProvider(Start));
        RateLimitCheck[] checks = [new(TenPerMinute, Key(1), 1, false), new(TwoPerMinute, Key(2), 3, false), new(TenPerMinute, Key(3), 1, false)];
        var outcomes = new StoreOutcome[3];
        Assert.Equal(2, await store.DecideStagesAsync(checks, new[] { 1, 2, 3 }, outcomes));
        Assert.True(outcomes[0].Committed);
        Assert.False(outcomes[1].Outcome.IsAllowed);
        Assert.Equal(default, outcomes[2]);
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task A_denied_shadow_check_does_not_stop_the_later_stages(string kind)
    {
        var store = Create(kind, new FakeTimeProvider(Start));
        RateLimitCheck[] checks = [new(TwoPerMinute, Key(1), 5, true), new(TenPerMinute, Key(2), 1, false)];
        var outcomes = new StoreOutcome[2];
        Assert.Equal(2, await store.DecideStagesAsync(checks, new[] { 1, 2 }, outcomes));
        Assert.False(outcomes[0].Outcome.IsAllowed);
        Assert.True(outcomes[1].Committed);
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task Stages_that_do_not_partition_the_checks_are_a_clear_error(string kind)
    {
        var store = Create(kind, new FakeTimeProvider(Start));
        RateLimitCheck[] checks = [new(TenPerMinute, Key(1), 1, false), new(TenPerMinute, Key(2), 1, false)];
        var outcomes = new StoreOutcome[2];
        var gap = await Assert.ThrowsAsync<ArgumentException>(async () => await store.DecideStagesAsync(checks, new[] { 1 }, outcomes));
        Assert.Contains("must end at the number of checks (2)", gap.Message, StringComparison.Ordinal);
        var empty = await Assert.ThrowsAsync<ArgumentException>(async () => await store.DecideStagesAsync(checks, new[] { 1, 1, 2 }, outcomes));
        Assert.Contains("must increase", empty.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<ArgumentException>(async () => await store.DecideStagesAsync(checks, new[] { 2 }, new StoreOutcome[1]));
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task The_engine_answers_alike_on_every_store(string kind)
    {
        var engine = new RateLimitEngine(
            new RateLimitPolicy(
            [
                new RateLimitRule("ip", RateLimitTier.Edge, TwoPerMinute),
                new RateLimitRule("per-user", RateLimitTier.User, TenPerMinute),
                new RateLimitRule("everything", RateLimitTier.Global, TenPerMinute),
            ]),
            Create(kind, new FakeTimeProvider(Start)));
        var request = new RequestContext { Subject = "alice", Path = "/", Method = "GET", ClientIp = IPAddress.Parse("203.0.113.7") };
        var first = await engine.EvaluateAsync(request);
        Assert.True(first.IsAllowed);
        Assert.Equal("ip", first.Decision.Rule!.Name);
        Assert.Equal(1, first.Decision.Remaining);
        Assert.True((await engine.EvaluateAsync(request)).IsAllowed);
        var rejected = await engine.EvaluateAsync(request);
        Assert.False(rejected.IsAllowed);
        Assert.Equal(RateLimitTier.Edge, rejected.Decision.Tier);

        // The user and global tiers were charged twice, not three times: this third charge leaves 7.
        var other = await engine.EvaluateAsync(request, RateLimitTier.User, RateLimitTier.Global);
        Assert.True(other.IsAllowed);
        Assert.Equal(7, other.Decision.Remaining);
    }

    [Fact]
    public async Task A_store_that_stops_without_a_rejection_breaks_its_contract_loudly()
    {
        var engine = new RateLimitEngine(
            new RateLimitPolicy([new RateLimitRule("ip", RateLimitTier.Edge, TenPerMinute), new RateLimitRule("everything", RateLimitTier.Global, TenPerMinute)]),
            new StopsEarlyStore(new MemoryStore(timeProvider: new FakeTimeProvider(Start))));
        var request = new RequestContext { Path = "/", Method = "GET", ClientIp = IPAddress.Parse("203.0.113.7") };
        var error = await Assert.ThrowsAsync<InvalidOperationException>(async () => await engine.EvaluateAsync(request));
        Assert.Contains("decided 1 of 2 stages", error.Message, StringComparison.Ordinal);
    }

    /// <summary>A store that keeps the interface's default staged decisions, optionally completing asynchronously.</summary>
    private sealed class DefaultStagesStore(MemoryStore inner, bool yields) : DelegatingStore<MemoryStore>(inner)
    {
        public override async ValueTask DecideAsync(ReadOnlyMemory<RateLimitCheck> checks, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default)
        {
            if (yields)
            {
                await Task.Yield();
            }

            await Inner.DecideAsync(checks, outcomes, cancellationToken);
        }

        // The default under test, not the memory store's own.
        public override ValueTask<int> DecideStagesAsync(ReadOnlyMemory<RateLimitCheck> checks, ReadOnlyMemory<int> stageEnds, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default) =>
            DecideStagesInTurnAsync(checks, stageEnds, outcomes, cancellationToken);
    }

    /// <summary>A broken store: it decides the first stage only and claims that was all.</summary>
    private sealed class StopsEarlyStore(MemoryStore inner) : DelegatingStore<MemoryStore>(inner)
    {
        public override async ValueTask<int> DecideStagesAsync(ReadOnlyMemory<RateLimitCheck> checks, ReadOnlyMemory<int> stageEnds, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default)
        {
            await Task.Yield();
            var end = stageEnds.Span[0];
            await Inner.DecideAsync(checks[..end], outcomes[..end], cancellationToken);
            return 1;
        }
    }
}
