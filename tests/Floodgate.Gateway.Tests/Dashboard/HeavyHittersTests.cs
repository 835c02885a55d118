using System.Net;
using Floodgate.Gateway.Dashboard;

namespace Floodgate.Gateway.Tests.Dashboard;

public sealed class HeavyHittersTests
{
    [Fact]
    public void Holds_no_more_than_its_capacity_whatever_the_number_of_distinct_keys()
    {
        var sketch = new HeavyHitters(8);
        for (var i = 0; i < 10_000; i++)
        {
            sketch.Add($"key-{i}");
        }

        Assert.Equal(8, sketch.Count);
        Assert.Equal(10_000, sketch.Total);
        Assert.Equal(8, sketch.Top(100).Length);
    }

    [Fact]
    public void Finds_the_heavy_hitters_among_many_one_off_keys_with_counts_within_their_error()
    {
        var sketch = new HeavyHitters(32);
        var truth = new Dictionary<string, long>();
        // Two heavy keys interleaved with 3,000 keys seen once each and a lighter one: 300 and 200 of 3,600 occurrences,
        // above total / capacity (112.5), so Space-Saving must hold them, and rank them first.
        for (var i = 0; i < 3_000; i++)
        {
            Add($"noise-{i}");
            if (i % 10 == 0)
            {
                Add("mallory");
            }

            if (i % 15 == 0)
            {
                Add("eve");
            }

            if (i % 30 == 0)
            {
                Add("trudy");
            }
        }

        var top = sketch.Top(3);
        Assert.Equal("mallory", top[0].Key);
        Assert.Equal("eve", top[1].Key);
        foreach (var hitter in top.Where(h => truth.ContainsKey(h.Key)))
        {
            Assert.InRange(truth[hitter.Key], hitter.Count - hitter.Error, hitter.Count);
        }

        void Add(string key)
        {
            sketch.Add(key);
            truth[key] = truth.GetValueOrDefault(key) + 1;
        }
    }

    [Fact]
    public void Counts_exactly_while_under_capacity_and_ranks_most_first()
    {
        var sketch = new HeavyHitters(4);
        foreach (var key in new[] { "a", "b", "b", "c", "c", "c" })
        {
            sketch.Add(key);
        }

        Assert.Equal([new HeavyHitter("c", 3, 0), new HeavyHitter("b", 2, 0)], sketch.Top(2));
    }

    [Fact]
    public void A_newcomer_past_capacity_takes_the_least_counted_slot_and_inherits_its_count_as_error()
    {
        var sketch = new HeavyHitters(2);
        sketch.Add("a");
        sketch.Add("a");
        sketch.Add("b");
        sketch.Add("c");

        Assert.Equal([new HeavyHitter("a", 2, 0), new HeavyHitter("c", 2, 1)], sketch.Top(2));
    }

    [Fact]
    public void A_capacity_below_one_is_refused() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new HeavyHitters(0));

    [Theory]
    [InlineData("198.51.100.7", "198.51.100.0/24")]
    [InlineData("::ffff:198.51.100.7", "198.51.100.0/24")]
    [InlineData("2001:db8:1:2:ffff::9", "2001:db8:1:2::/64")]
    public void A_client_network_is_its_ipv4_24_or_ipv6_64(string address, string network) =>
        Assert.Equal(network, OffenderRecorder.NetworkOf(IPAddress.Parse(address)));
}
