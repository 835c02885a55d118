using System.Net;
using Floodgate.Bans;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.Tests.Bans;

public sealed class BanStoreTests
{
    private static readonly DateTimeOffset Start = new(2026, 1, 5, 12, 0, 0, TimeSpan.Zero);

    private static Ban Make(BanKind kind, string text, TimeSpan ttl, DateTimeOffset? at = null, string source = Ban.AdminSource)
    {
        Assert.True(Ban.TryCanonical(kind, text, out var target, out var error), error);
        return new Ban(kind, target, source, at ?? Start, (at ?? Start) + ttl);
    }

    [Theory]
    [InlineData(BanKind.Ip, "203.0.113.7", "203.0.113.7")]
    [InlineData(BanKind.Ip, "::ffff:203.0.113.7", "203.0.113.7")]
    [InlineData(BanKind.Ip, "2001:DB8::1", "2001:db8::1")]
    [InlineData(BanKind.Network, "203.0.113.77/24", "203.0.113.0/24")]
    [InlineData(BanKind.Network, "2001:db8:1:2:3::/48", "2001:db8:1::/48")]
    [InlineData(BanKind.Network, "0.0.0.0/0", "0.0.0.0/0")]
    [InlineData(BanKind.Subject, "carol/dev", "carol/dev")]
    public void Targets_are_canonical(BanKind kind, string text, string expected)
    {
        Assert.True(Ban.TryCanonical(kind, text, out var target, out var error), error);
        Assert.Equal(expected, target);
    }

    [Theory]
    [InlineData(BanKind.Ip, "", "is empty.")]
    [InlineData(BanKind.Ip, "203.0.113.0/24", "is not an IP address")]
    [InlineData(BanKind.Ip, "example.com", "is not an IP address")]
    [InlineData(BanKind.Network, "203.0.113.7", "is not a network")]
    [InlineData(BanKind.Network, "203.0.113.0/33", "longer than 32 bits")]
    [InlineData(BanKind.Network, "203.0.113.0/-1", "is not a network")]
    public void Bad_targets_say_why(BanKind kind, string text, string reason)
    {
        Assert.False(Ban.TryCanonical(kind, text, out _, out var error));
        Assert.Contains(reason, error, StringComparison.Ordinal);
    }

    [Fact]
    public void A_subject_over_the_size_limit_is_refused()
    {
        Assert.False(Ban.TryCanonical(BanKind.Subject, new string('s', Ban.MaxSubjectLength + 1), out _, out var error));
        Assert.Equal($"is {Ban.MaxSubjectLength + 1} characters; at most {Ban.MaxSubjectLength}.", error);
        Assert.True(Ban.TryCanonical(BanKind.Subject, new string('s', Ban.MaxSubjectLength), out _, out _));
    }

    [Fact]
    public async Task An_address_is_found_by_its_own_ban_or_a_network_holding_it_and_a_subject_by_its_own()
    {
        var time = new FakeTimeProvider(Start);
        var store = new MemoryBanStore(time);
        Assert.True(await store.AddAsync(Make(BanKind.Ip, "198.51.100.9", TimeSpan.FromMinutes(5))));
        Assert.True(await store.AddAsync(Make(BanKind.Network, "203.0.113.0/24", TimeSpan.FromMinutes(10))));
        Assert.True(await store.AddAsync(Make(BanKind.Network, "2001:db8:1::/48", TimeSpan.FromMinutes(10))));
        Assert.True(await store.AddAsync(Make(BanKind.Subject, "mallory", TimeSpan.FromMinutes(10))));

        Assert.True(store.TryFind(IPAddress.Parse("198.51.100.9"), out var exact));
        Assert.Equal("ip:198.51.100.9", exact.Id);
        Assert.True(store.TryFind(IPAddress.Parse("::ffff:198.51.100.9"), out _));
        Assert.False(store.TryFind(IPAddress.Parse("198.51.100.10"), out _));
        Assert.True(store.TryFind(IPAddress.Parse("203.0.113.200"), out var network));
        Assert.Equal("cidr:203.0.113.0/24", network.Id);
        Assert.False(store.TryFind(IPAddress.Parse("203.0.114.1"), out _));
        Assert.True(store.TryFind(IPAddress.Parse("2001:db8:1:ffff::5"), out var v6));
        Assert.Equal("cidr:2001:db8:1::/48", v6.Id);
        Assert.False(store.TryFind(IPAddress.Parse("2001:db8:2::5"), out _));
        Assert.True(store.TryFindSubject("mallory", out _));
        Assert.False(store.TryFindSubject("Mallory", out _));

        // The most specific ban answers when several hold an address.
        Assert.True(await store.AddAsync(Make(BanKind.Ip, "203.0.113.5", TimeSpan.FromMinutes(1))));
        Assert.True(store.TryFind(IPAddress.Parse("203.0.113.5"), out var specific));
        Assert.Equal("ip:203.0.113.5", specific.Id);
    }

    [Fact]
    public async Task Bans_lapse_on_time_and_are_pruned_as_they_are_read()
    {
        var time = new FakeTimeProvider(Start);
        var store = new MemoryBanStore(time);
        await store.AddAsync(Make(BanKind.Ip, "198.51.100.9", TimeSpan.FromMinutes(5)));
        await store.AddAsync(Make(BanKind.Network, "203.0.113.0/24", TimeSpan.FromMinutes(10), Start.AddSeconds(1)));
        await store.AddAsync(Make(BanKind.Subject, "mallory", TimeSpan.FromMinutes(10), Start.AddSeconds(2)));
        Assert.Equal(["subject:mallory", "cidr:203.0.113.0/24", "ip:198.51.100.9"], (await store.ListAsync(10)).Select(b => b.Id));
        Assert.Equal(["subject:mallory"], (await store.ListAsync(1)).Select(b => b.Id));

        time.Advance(TimeSpan.FromMinutes(5));
        Assert.False(store.TryFind(IPAddress.Parse("198.51.100.9"), out _));
        Assert.Equal(2, store.Count);
        Assert.True(store.TryFind(IPAddress.Parse("203.0.113.1"), out _));

        time.Advance(TimeSpan.FromMinutes(5) + TimeSpan.FromSeconds(1));
        Assert.Equal(["subject:mallory"], (await store.ListAsync(10)).Select(b => b.Id));
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Empty(await store.ListAsync(10));
        Assert.Equal(0, store.Count);
        Assert.False(store.TryFindSubject("mallory", out _));
    }

    [Fact]
    public async Task The_store_is_bounded_a_replaced_ban_takes_no_room_and_a_lapsed_one_makes_room()
    {
        var time = new FakeTimeProvider(Start);
        var store = new MemoryBanStore(time, maxBans: 2);
        Assert.True(await store.AddAsync(Make(BanKind.Ip, "198.51.100.1", TimeSpan.FromMinutes(1))));
        Assert.True(await store.AddAsync(Make(BanKind.Ip, "198.51.100.2", TimeSpan.FromMinutes(5))));
        Assert.False(await store.AddAsync(Make(BanKind.Ip, "198.51.100.3", TimeSpan.FromMinutes(5))));
        Assert.True(await store.AddAsync(Make(BanKind.Ip, "198.51.100.2", TimeSpan.FromMinutes(9))));

        time.Advance(TimeSpan.FromMinutes(1));
        Assert.True(await store.AddAsync(Make(BanKind.Ip, "198.51.100.3", TimeSpan.FromMinutes(5), time.GetUtcNow())));
        Assert.Equal(2, store.Count);
    }

    [Fact]
    public async Task Removing_a_ban_lifts_it_and_answers_what_was_removed()
    {
        var store = new MemoryBanStore(new FakeTimeProvider(Start));
        await store.AddAsync(Make(BanKind.Network, "203.0.113.0/24", TimeSpan.FromMinutes(10)));
        var removed = await store.RemoveAsync(BanKind.Network, "203.0.113.0/24");
        Assert.Equal("cidr:203.0.113.0/24", removed?.Id);
        Assert.False(store.TryFind(IPAddress.Parse("203.0.113.1"), out _));
        Assert.Null(await store.RemoveAsync(BanKind.Network, "203.0.113.0/24"));
    }

    [Fact]
    public void Json_round_trips_and_refuses_what_is_not_a_ban()
    {
        var ban = Make(BanKind.Network, "2001:db8::/32", TimeSpan.FromHours(1), source: "ip-flood");
        Assert.Equal(ban, BanJson.Read(BanJson.Write(ban)));
        Assert.Null(BanJson.Read("""{"kind":"ip","target":"not an ip","source":"admin","created_at":0,"expires_at":1}"""));
        Assert.Null(BanJson.Read("""{"kind":"host"}"""));
        Assert.Null(BanJson.Read("{"));
    }

    [Fact]
    public async Task A_lookup_allocates_nothing()
    {
        var store = new MemoryBanStore(new FakeTimeProvider(Start));
        await store.AddAsync(Make(BanKind.Network, "203.0.113.0/24", TimeSpan.FromMinutes(10)));
        await store.AddAsync(Make(BanKind.Subject, "mallory", TimeSpan.FromMinutes(10)));
        var address = IPAddress.Parse("198.51.100.1");
        store.TryFind(address, out _);
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 100; i++)
        {
            store.TryFind(address, out _);
            store.TryFindSubject("alice", out _);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public async Task The_memory_store_resets_one_key()
    {
        var store = new MemoryStore(null, new FakeTimeProvider(Start));
        var check = new RateLimitCheck(Limit.FixedWindow(Rate.Parse("1/min")), StoreKey.Create("rule", "alice"), 1, false);
        var outcomes = new StoreOutcome[1];
        await store.DecideAsync(new[] { check }, outcomes);
        await store.DecideAsync(new[] { check }, outcomes);
        Assert.False(outcomes[0].Outcome.IsAllowed);

        Assert.True(await store.ResetAsync(check));
        Assert.False(await store.ResetAsync(check));
        await store.DecideAsync(new[] { check }, outcomes);
        Assert.True(outcomes[0].Outcome.IsAllowed);
    }
}
