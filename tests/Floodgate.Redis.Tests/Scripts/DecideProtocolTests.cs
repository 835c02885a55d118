using System.Globalization;
using System.Reflection;
using System.Text.RegularExpressions;
using Floodgate.Algorithms;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;
using StackExchange.Redis;

namespace Floodgate.Redis.Tests;

/// <summary>
/// decide.lua and <see cref="DecideProtocol"/> describe one wire layout from its two sides: the same names with the same
/// values, and a call encoded by the one is decided by the other field by field on a real server.
/// </summary>
public abstract partial class DecideProtocolTests(IServerFixture fixture)
{
    private static readonly long Now = TestStores.Micros(new DateTimeOffset(2026, 6, 1, 12, 34, 56, TimeSpan.Zero)) + 789_012;

    [Fact]
    public void Decide_lua_names_each_offset_with_the_value_DecideProtocol_gives_it()
    {
        var csharp = typeof(DecideProtocol).GetFields(BindingFlags.Public | BindingFlags.Static)
            .Where(field => field.IsLiteral && field.FieldType == typeof(int))
            .ToDictionary(field => LuaName(field.Name), field => (int)field.GetRawConstantValue()!);
        var lua = LuaLayout(RedisStore.Script);

        Assert.Contains("CHECK_STRIDE", lua.Keys);
        Assert.Equal(csharp.OrderBy(pair => pair.Key, StringComparer.Ordinal), lua.OrderBy(pair => pair.Key, StringComparer.Ordinal));
    }

    [Fact]
    public void Each_part_s_offsets_fill_its_length_once()
    {
        Assert.Equal(Enumerable.Range(0, DecideProtocol.ArgHeader), Sorted(DecideProtocol.ArgNow, DecideProtocol.ArgHead));
        Assert.Equal(Enumerable.Range(0, DecideProtocol.GroupHeader), Sorted(DecideProtocol.GroupStage, DecideProtocol.GroupChecks));
        Assert.Equal(
            Enumerable.Range(0, DecideProtocol.CheckStride),
            Sorted(
                DecideProtocol.Algorithm,
                DecideProtocol.Cost,
                DecideProtocol.Mode,
                DecideProtocol.P1,
                DecideProtocol.P2,
                DecideProtocol.P3,
                DecideProtocol.PeriodStart,
                DecideProtocol.PeriodEnd,
                DecideProtocol.NextPeriodEnd,
                DecideProtocol.Slice));
        Assert.Equal(Enumerable.Range(0, DecideProtocol.ReplyHeader), Sorted(DecideProtocol.ReplyStatus, DecideProtocol.ReplyNow, DecideProtocol.ReplyEvaluated));
        Assert.Equal(
            Enumerable.Range(0, DecideProtocol.ReplyStride),
            Sorted(DecideProtocol.Allowed, DecideProtocol.StateA, DecideProtocol.StateB, DecideProtocol.StateC, DecideProtocol.Granted));
    }

    [Fact]
    public void Decide_lua_indexes_its_arguments_and_its_answer_by_named_offsets_only()
    {
        Assert.Empty(MagicIndex().Matches(RedisStore.Script).Select(match => match.Value));
    }

    [Fact]
    public async Task Every_field_of_a_call_round_trips_through_the_script()
    {
        using var connection = await ConnectionMultiplexer.ConnectAsync(fixture.Server.Configuration);
        var db = connection.GetDatabase();
        var prefix = "proto" + Guid.NewGuid().ToString("N")[..8];

        // Stage 0, alice: one check of each counter algorithm and gcra, each from a state of its own.
        var gcra = Check("gcra", Limit.Gcra(new Rate(10, 1, RateUnit.Second), 7), "alice", 2);
        var sliding = Check("sliding", Limit.SlidingWindow(new Rate(20, 1, RateUnit.Minute)), "alice", 3);
        var leased = Check("leased", Limit.FixedWindow(new Rate(30, 1, RateUnit.Hour)).WithLeasedSlice(6), "alice", 1);
        var quota = Check("quota", Limit.Quota(new Rate(40, 1, RateUnit.Day), QuotaCalendar.Utc), "alice", 4);
        var gcraState = Seed(gcra.Limit, (Now - 150_000, 3));
        var slidingState = Seed(sliding.Limit, (Now - 60_000_000, 5), (Now - 1_000_000, 4));
        var leasedState = Seed(leased.Limit, (Now - 60_000_000, 11));

        // Stage 1, bob: a lease beside one already held, a probe, and a shadow check over its limit.
        var concurrency = Check("concurrency", Limit.Concurrency(3, TimeSpan.FromSeconds(7)), "bob", 2);
        var probe = Check("probe", Limit.FixedWindow(new Rate(50, 1, RateUnit.Hour)), "bob", 5) with { IsProbe = true };
        var shadow = Check("shadow", Limit.FixedWindow(new Rate(2, 1, RateUnit.Hour)), "bob", 1, shadow: true);
        var probeState = Seed(probe.Limit, (Now - 60_000_000, 13));
        var shadowState = Seed(shadow.Limit, (Now - 60_000_000, 2));
        const long LeaseId = 0x4000_0000_1234_5678;

        var keys = new[] { gcra, sliding, leased, quota, concurrency, probe, shadow }.Select(check => Key(prefix, check)).ToArray();
        await db.StringSetAsync(keys[0], Format(gcra.Limit, gcraState));
        await db.StringSetAsync(keys[1], Format(sliding.Limit, slidingState));
        await db.StringSetAsync(keys[2], Format(leased.Limit, leasedState));
        await db.SortedSetAddAsync(keys[4], [new SortedSetEntry("9:1", Now + 1_000_000), new SortedSetEntry("#", -1)]);
        await db.StringSetAsync(keys[5], Format(probe.Limit, probeState));
        await db.StringSetAsync(keys[6], Format(shadow.Limit, shadowState));

        var values = Encode(
            Now,
            new Group(0, [new(gcra), new(sliding), new(leased, Slice: 6), new(quota)]),
            new Group(1, [new(concurrency, LeaseId: LeaseId), new(probe), new(shadow)]));
        var result = await db.ScriptEvaluateAsync(RedisStore.Script, keys, values);

        Assert.True(DecideProtocol.TryReadDecided(result, 2, out var now, out var evaluated), result.ToString());
        Assert.Equal(Now, now);
        Assert.Equal(2, evaluated);
        Assert.Equal(DecideProtocol.ReplyLength(7), result.Length);

        // Each counter check: allowed as the engine's math says, the state it was given read back, the cost (or the
        // slice) granted, and the engine's next state written.
        (RateLimitCheck Check, LimitState State, long Granted)[] counters =
            [(gcra, gcraState, 2), (sliding, slidingState, 3), (leased, leasedState, 6), (quota, default, 4)];
        for (var i = 0; i < counters.Length; i++)
        {
            var (check, state, granted) = counters[i];
            var expected = LimitMath.Decide(check.Limit, state, Now, granted, out var next);
            Assert.True(expected.IsAllowed, check.Limit.ToString());
            Assert.Equal(new DecideProtocol.CheckReply(true, state, granted), DecideProtocol.ReadCheck(result, i));
            Assert.Equal(Format(check.Limit, next), (string?)await db.StringGetAsync(keys[i]));
        }

        var (dayStart, dayEnd) = quota.Limit.CalendarPeriod(Now);
        Assert.Equal(string.Create(CultureInfo.InvariantCulture, $"{dayStart}:4:{dayEnd}"), (string?)await db.StringGetAsync(keys[3]));

        // The lease: the one held read back as permits in flight, earliest and latest expiry; the new one added with its
        // timeout, under the member the lease id and the cost name.
        Assert.Equal(new DecideProtocol.CheckReply(true, new LimitState(1, Now + 1_000_000, Now + 1_000_000), 2), DecideProtocol.ReadCheck(result, 4));
        Assert.Equal((double)(Now + 7_000_000), await db.SortedSetScoreAsync(keys[4], DecideProtocol.LeaseMember(LeaseId, 2)));
        Assert.Equal(-3.0, await db.SortedSetScoreAsync(keys[4], "#"));

        // The probe is decided and writes nothing; the shadow check is denied and does not deny bob.
        Assert.Equal(new DecideProtocol.CheckReply(true, probeState, 0), DecideProtocol.ReadCheck(result, 5));
        Assert.Equal(Format(probe.Limit, probeState), (string?)await db.StringGetAsync(keys[5]));
        Assert.Equal(new DecideProtocol.CheckReply(false, shadowState, 0), DecideProtocol.ReadCheck(result, 6));
        Assert.True(DecideProtocol.IsDenied(result, 6));
        Assert.False(DecideProtocol.IsDenied(result, 4));
    }

    [Fact]
    public async Task The_stages_after_one_an_enforced_check_denies_are_not_evaluated()
    {
        using var connection = await ConnectionMultiplexer.ConnectAsync(fixture.Server.Configuration);
        var db = connection.GetDatabase();
        var prefix = "proto" + Guid.NewGuid().ToString("N")[..8];
        var full = Check("full", Limit.FixedWindow(new Rate(2, 1, RateUnit.Hour)), "alice", 1);
        var sibling = Check("sibling", Limit.Gcra(new Rate(10, 1, RateUnit.Second)), "carol", 1);
        var later = Check("later", Limit.Gcra(new Rate(10, 1, RateUnit.Second)), "bob", 1);
        var fullState = Seed(full.Limit, (Now - 60_000_000, 2));
        RedisKey[] keys = [Key(prefix, full), Key(prefix, sibling), Key(prefix, later)];
        await db.StringSetAsync(keys[0], Format(full.Limit, fullState));

        var values = Encode(Now, new Group(0, [new(full)]), new Group(0, [new(sibling)]), new Group(1, [new(later)]));
        var result = await db.ScriptEvaluateAsync(RedisStore.Script, keys, values);

        Assert.True(DecideProtocol.TryReadDecided(result, 3, out _, out var evaluated));
        Assert.Equal(2, evaluated);
        Assert.Equal(DecideProtocol.ReplyLength(2), result.Length);
        Assert.Equal(new DecideProtocol.CheckReply(false, fullState, 0), DecideProtocol.ReadCheck(result, 0));
        Assert.True(DecideProtocol.ReadCheck(result, 1).IsAllowed);
        Assert.True(await db.KeyExistsAsync(keys[1]));
        Assert.False(await db.KeyExistsAsync(keys[2]));
    }

    [Fact]
    public async Task A_calendar_quota_takes_the_next_period_or_answers_a_skew()
    {
        using var connection = await ConnectionMultiplexer.ConnectAsync(fixture.Server.Configuration);
        var db = connection.GetDatabase();
        var prefix = "proto" + Guid.NewGuid().ToString("N")[..8];
        var quota = Check("daily", Limit.Quota(new Rate(40, 1, RateUnit.Day), QuotaCalendar.Utc), "alice", 3);
        RedisKey[] keys = [Key(prefix, quota)];
        const long Day = 86_400_000_000;

        // Periods computed a day behind: the server's now is in the next one, which the script takes.
        var result = await db.ScriptEvaluateAsync(RedisStore.Script, keys, Encode(Now, Now - Day, new Group(0, [new(quota)])));
        Assert.True(DecideProtocol.TryReadDecided(result, 1, out _, out var evaluated));
        Assert.Equal(1, evaluated);
        var (start, end) = quota.Limit.CalendarPeriod(Now);
        Assert.Equal(string.Create(CultureInfo.InvariantCulture, $"{start}:3:{end}"), (string?)await db.StringGetAsync(keys[0]));

        // Two days behind: neither period holds the server's now, and nothing is written.
        var skew = await db.ScriptEvaluateAsync(RedisStore.Script, [Key(prefix + "s", quota)], Encode(Now, Now - (2 * Day), new Group(0, [new(quota)])));
        Assert.True(DecideProtocol.IsCalendarSkew(skew), skew.ToString());
        Assert.False(DecideProtocol.TryReadDecided(skew, 1, out _, out _));
        Assert.Equal(Now, DecideProtocol.ReadNow(skew));
        Assert.False(await db.KeyExistsAsync(Key(prefix + "s", quota)));
    }

    private static RedisValue[] Encode(long now, params Group[] groups) => Encode(now, now, groups);

    /// <summary>A call's arguments, written as the store writes them.</summary>
    private static RedisValue[] Encode(long now, long calendarNow, params Group[] groups)
    {
        var checks = groups.Sum(group => group.Checks.Length);
        var values = new RedisValue[DecideProtocol.ArgumentCount(groups.Length, checks)];
        var at = DecideProtocol.WriteHeader(values, now, groups.Length);
        foreach (var group in groups)
        {
            at = DecideProtocol.WriteGroup(values, at, group.Stage, group.Checks.Length);
            foreach (var sent in group.Checks)
            {
                at = DecideProtocol.WriteCheck(values, at, sent.Check, sent.Slice, sent.LeaseId, calendarNow);
            }
        }

        Assert.Equal(values.Length, at);
        return values;
    }

    private static RateLimitCheck Check(string rule, Limit limit, string identity, long cost, bool shadow = false) =>
        new(limit, StoreKey.Create(rule, identity), cost, shadow);

    private static RedisKey Key(string prefix, RateLimitCheck check) => RedisKeys.For(prefix, check.Key, check.Limit.Algorithm);

    /// <summary>The state the engine's math leaves after spending each cost at its time, from no state.</summary>
    private static LimitState Seed(Limit limit, params (long At, long Cost)[] spends)
    {
        var state = default(LimitState);
        foreach (var (at, cost) in spends)
        {
            LimitMath.Decide(limit, state, at, cost, out state);
        }

        return state;
    }

    /// <summary>A state as decide.lua keeps it: gcra's 'A', a counter's 'A:B:C'.</summary>
    private static string Format(Limit limit, LimitState state) => limit.Algorithm == LimitAlgorithm.Gcra
        ? state.A.ToString(CultureInfo.InvariantCulture)
        : string.Create(CultureInfo.InvariantCulture, $"{state.A}:{state.B}:{state.C}");

    private static int[] Sorted(params int[] offsets) => [.. offsets.Order()];

    /// <summary>C#'s name in Lua's spelling: ArgNow is ARG_NOW, StateA is STATE_A.</summary>
    private static string LuaName(string name) => CamelBoundary().Replace(name, "_").ToUpperInvariant();

    /// <summary>The script's integer constants (upper case, wherever declared) but its own limits: its wire layout.</summary>
    private static Dictionary<string, int> LuaLayout(string script)
    {
        var layout = new Dictionary<string, int>();
        foreach (Match match in LuaConstant().Matches(script))
        {
            var name = match.Groups[1].Value;
            if (name != "UNPACK_MAX")
            {
                Assert.True(layout.TryAdd(name, int.Parse(match.Groups[2].Value, CultureInfo.InvariantCulture)), $"{name} is declared twice.");
            }
        }

        return layout;
    }

    [GeneratedRegex(@"^ *local ([A-Z][A-Z0-9_]*) = (-?\d+)$", RegexOptions.Multiline)]
    private static partial Regex LuaConstant();

    [GeneratedRegex("(?<=[a-z0-9])(?=[A-Z])")]
    private static partial Regex CamelBoundary();

    /// <summary>An index into ARGV or the answer that ends in a number: an offset without its name.</summary>
    [GeneratedRegex(@"\b(?:ARGV|out)\[[^\]]*[+-] *\d+\]")]
    private static partial Regex MagicIndex();

    private sealed record Group(int Stage, Sent[] Checks);

    private sealed record Sent(RateLimitCheck Check, long Slice = 0, long LeaseId = 0);
}
