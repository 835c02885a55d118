using Floodgate.Algorithms;
using Floodgate.AspNetCore.Middleware;
using Floodgate.Engine;
using Floodgate.Limits;
using Floodgate.Rules;

namespace Floodgate.AspNetCore.Tests.Middleware;

public sealed class RateLimitResponsesTests
{
    private static readonly LimitOutcome Allowed = new(true, 42, 1_500_000, 0);

    [Fact]
    public void Rules_sharing_a_limit_keep_their_own_policy_text_without_allocating()
    {
        // A group's rule (MapGroup(...).WithFloodgateRule) is one rule per endpoint, all with the group's one limit.
        var limit = Limit.Gcra(Rate.Parse("100/s"));
        var a = new RateLimitDecision(new RateLimitRule("a", RateLimitTier.Service, limit), limit, Allowed, false, false);
        var b = new RateLimitDecision(new RateLimitRule("b", RateLimitTier.Service, limit), limit, Allowed, false, false);
        Assert.Equal("\"a\";q=100;w=1", RateLimitResponses.FormatPolicy(a));
        Assert.Equal("\"b\";q=100;w=1", RateLimitResponses.FormatPolicy(b));

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1000; i++)
        {
            RateLimitResponses.FormatPolicy(a);
            RateLimitResponses.FormatPolicy(b);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.Equal("\"a\";q=100;w=1", RateLimitResponses.FormatPolicy(a));
        Assert.Equal("\"b\";q=100;w=1", RateLimitResponses.FormatPolicy(b));
    }

    [Fact]
    public void A_plan_rule_keeps_the_policy_text_of_each_plan_without_allocating()
    {
        var free = Limit.Gcra(Rate.Parse("10/min"));
        var pro = Limit.Concurrency(5);
        var rule = new RateLimitRule("per-user", RateLimitTier.User, new Dictionary<string, Limit> { ["free"] = free, ["pro"] = pro }, "free");
        var onFree = new RateLimitDecision(rule, free, Allowed, false, false);
        var onPro = new RateLimitDecision(rule, pro, Allowed, false, false);
        Assert.Equal("\"per-user\";q=10;w=60", RateLimitResponses.FormatPolicy(onFree));
        Assert.Equal("\"per-user\";q=5", RateLimitResponses.FormatPolicy(onPro));

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1000; i++)
        {
            RateLimitResponses.FormatPolicy(onFree);
            RateLimitResponses.FormatPolicy(onPro);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.Equal("\"per-user\";q=10;w=60", RateLimitResponses.FormatPolicy(onFree));
        Assert.Equal("\"per-user\";q=5", RateLimitResponses.FormatPolicy(onPro));
    }

    [Fact]
    public void The_state_text_allocates_only_itself()
    {
        var limit = Limit.Gcra(Rate.Parse("100/s"));
        var decision = new RateLimitDecision(new RateLimitRule("orders \"v2\"", RateLimitTier.Service, limit), limit, Allowed, false, false);
        var state = RateLimitResponses.FormatState(decision);
        Assert.Equal("\"orders \\\"v2\\\"\";r=42;t=2", state);

        // The fewest bytes of a few rounds: a round may also pay for a buffer the shared array pool dropped when a GC
        // trimmed it (other tests run meanwhile), which is not the formatting's own cost.
        var fewest = long.MaxValue;
        for (var round = 0; round < 5; round++)
        {
            var before = GC.GetAllocatedBytesForCurrentThread();
            for (var i = 0; i < 1000; i++)
            {
                RateLimitResponses.FormatState(decision);
            }

            fewest = Math.Min(fewest, GC.GetAllocatedBytesForCurrentThread() - before);
        }

        // A string of n characters: header, method table and length (20 bytes) and n + 1 chars, 8-byte aligned.
        var stringBytes = (20 + (2 * (state.Length + 1)) + 7) & ~7;
        Assert.Equal(1000L * stringBytes, fewest);
    }
}
