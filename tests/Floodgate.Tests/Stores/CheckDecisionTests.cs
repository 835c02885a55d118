using System.Threading.RateLimiting;
using Floodgate.Algorithms;
using Floodgate.Engine;
using Floodgate.Limits;
using Floodgate.RateLimiting;
using Floodgate.Rules;
using Floodgate.Stores;

namespace Floodgate.Tests.Stores;

public sealed class CheckDecisionTests
{
    private static readonly Limit Limit = Limit.FixedWindow(Rate.Parse("5/s"));

    [Fact]
    public void An_outcome_reads_in_a_clients_terms()
    {
        var denied = new CheckDecision(Limit, new LimitOutcome(false, -3, 1_500_000, 250_000), isStoreFailure: true);
        Assert.False(denied.IsAllowed);
        Assert.Equal(0, denied.Remaining);
        Assert.Equal(TimeSpan.FromSeconds(1.5), denied.ResetAfter);
        Assert.Equal(TimeSpan.FromMilliseconds(250), denied.RetryAfter);
        Assert.False(denied.IsPermanent);
        Assert.True(denied.IsStoreFailure);
        Assert.Same(Limit, denied.Limit);

        var never = new CheckDecision(Limit, new LimitOutcome(false, 5, -1, LimitOutcome.Never), isStoreFailure: false);
        Assert.Equal(Timeout.InfiniteTimeSpan, never.RetryAfter);
        Assert.True(never.IsPermanent);
        Assert.Equal(TimeSpan.Zero, never.ResetAfter);
    }

    [Fact]
    public void A_rules_decision_carries_the_numbers_of_its_check()
    {
        var outcome = new LimitOutcome(false, 2, 900_000, 100_000);
        var check = new CheckDecision(Limit, outcome, isStoreFailure: false);
        var decision = new RateLimitDecision(new RateLimitRule("r", RateLimitTier.User, Limit), check, isShadow: true);
        Assert.Equal((check.IsAllowed, check.Remaining, check.ResetAfter, check.RetryAfter, check.IsPermanent, check.IsStoreFailure), (decision.IsAllowed, decision.Remaining, decision.ResetAfter, decision.RetryAfter, decision.IsPermanent, decision.IsStoreFailure));
        Assert.Same(Limit, decision.Limit);
        Assert.True(decision.IsShadowed);
    }

    [Fact]
    public void The_adapters_explain_a_cost_that_can_never_fit_without_a_rule()
    {
        using var limiter = new FloodgateRateLimiter(new MemoryStore(), Limit);
        using var lease = limiter.AttemptAcquire(6);
        Assert.False(lease.IsAcquired);
        Assert.True(lease.TryGetMetadata(MetadataName.ReasonPhrase, out var reason));
        Assert.Equal("The cost is more than the limit 'fixed_window 5/s' can ever grant.", reason);
    }
}
