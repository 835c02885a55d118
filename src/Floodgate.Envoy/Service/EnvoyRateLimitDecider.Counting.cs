using Floodgate.Stores;

namespace Floodgate.Envoy;

// Which hits are counted (EnvoyRateLimitOptions.HitCounting), and what each descriptor of a check sees. Descriptors that
// share a rule and key are one check of their summed hits, settled as the reference's one increment per descriptor in
// request order: descriptor i sees what remained before the check less the hits of descriptors 1..i, and is over the
// limit once that is negative.
internal sealed partial class EnvoyRateLimitDecider
{
    /// <summary>Decides the request's <paramref name="count"/> checks and tells what each check's descriptors see.</summary>
    private ValueTask<Group[]> CountAsync(DescriptorMatch[] matches, RateLimitCheck[] checks, int count, CancellationToken cancellationToken) =>
        _options.HitCounting switch
        {
            EnvoyHitCounting.WithinLimit => WithinLimitAsync(matches, checks, count, cancellationToken),

            // With one check, nothing else can stop counting: the same as counting every hit.
            EnvoyHitCounting.StopWhenOverLimit when count > 1 => StopWhenOverLimitAsync(matches, checks, count, cancellationToken),
            _ => CountAllAsync(matches, checks, count, cancellationToken),
        };

    /// <summary>
    /// <see cref="EnvoyHitCounting.All"/>: every check is charged its hits, over the limit or not (the checks are
    /// always charged), in one store call.
    /// </summary>
    private async ValueTask<Group[]> CountAllAsync(DescriptorMatch[] matches, RateLimitCheck[] checks, int count, CancellationToken cancellationToken)
    {
        var outcomes = new StoreOutcome[count];
        await _store.DecideAsync(checks.AsMemory(0, count), outcomes, cancellationToken).ConfigureAwait(false);
        var results = new Group[count];
        for (var c = 0; c < count; c++)
        {
            results[c] = Charged(matches, c, checks[c].Cost, outcomes[c]);
        }

        return results;
    }

    /// <summary>
    /// <see cref="EnvoyHitCounting.StopWhenOverLimit"/>, the reference's <c>STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT</c>:
    /// one store call probes every check (would its hits go over?) and, in a second stage that runs only when none
    /// would, charges them all. When some would go over, a second call charges those alone; the others are not counted
    /// and see what remained. A probe that would go over stops the counting whether its rule is a shadow or not, as in
    /// the reference.
    /// </summary>
    private async ValueTask<Group[]> StopWhenOverLimitAsync(DescriptorMatch[] matches, RateLimitCheck[] checks, int count, CancellationToken cancellationToken)
    {
        var staged = new RateLimitCheck[2 * count];
        for (var c = 0; c < count; c++)
        {
            staged[c] = checks[c] with { IsProbe = true, IsShadow = false, IsAlwaysCharged = false };
            staged[count + c] = checks[c];
        }

        var outcomes = new StoreOutcome[2 * count];
        var decided = await _store.DecideStagesAsync(staged, new[] { count, 2 * count }, outcomes, cancellationToken).ConfigureAwait(false);
        var results = new Group[count];
        if (decided == 2)
        {
            for (var c = 0; c < count; c++)
            {
                results[c] = Charged(matches, c, checks[c].Cost, outcomes[count + c]);
            }

            return results;
        }

        var over = new List<int>();
        for (var c = 0; c < count; c++)
        {
            var probe = outcomes[c];
            if (!probe.Outcome.IsAllowed)
            {
                over.Add(c);
                continue;
            }

            var total = checks[c].Cost;
            var before = probe.Outcome.Remaining > long.MaxValue - total ? long.MaxValue : probe.Outcome.Remaining + total;
            results[c] = new Group(before, long.MaxValue, probe.Outcome.ResetAfterMicroseconds, probe.IsStoreFailure, Uncounted: true);
        }

        var charges = new RateLimitCheck[over.Count];
        for (var i = 0; i < over.Count; i++)
        {
            charges[i] = checks[over[i]];
        }

        var charged = new StoreOutcome[over.Count];
        await _store.DecideAsync(charges, charged, cancellationToken).ConfigureAwait(false);
        for (var i = 0; i < over.Count; i++)
        {
            results[over[i]] = Charged(matches, over[i], checks[over[i]].Cost, charged[i]);
        }

        return results;
    }

    /// <summary>
    /// What the descriptors of check <paramref name="c"/> see once its <paramref name="total"/> hits were charged, fitting
    /// or not: those whose prefix is within what remained before are OK.
    /// </summary>
    private static Group Charged(DescriptorMatch[] matches, int c, long total, in StoreOutcome decided)
    {
        var outcome = decided.Outcome;
        if (outcome.IsAllowed)
        {
            var before = outcome.Remaining > long.MaxValue - total ? long.MaxValue : outcome.Remaining + total;
            return new Group(before, long.MaxValue, outcome.ResetAfterMicroseconds, decided.IsStoreFailure);
        }

        // Denied at a cost of 0: the key is already over its limit, so even a descriptor of no hits is over it. (A
        // sliding window reports what remains as at least 0, so what remained cannot tell.)
        var fits = -1L;
        if (total > 0 && !decided.IsStoreFailure)
        {
            foreach (var matched in matches)
            {
                if (matched.CheckIndex == c && matched.Prefix <= outcome.Remaining)
                {
                    fits = Math.Max(fits, matched.Prefix);
                }
            }
        }

        return new Group(outcome.Remaining, fits, outcome.ResetAfterMicroseconds, decided.IsStoreFailure);
    }

    /// <summary>
    /// <see cref="EnvoyHitCounting.WithinLimit"/>: a store never charges a denied check, so when a group's sum is denied,
    /// only the hits of the descriptors that fit (the longest prefix within what remained) are charged, in a second
    /// store call; those descriptors are OK, the rest are over the limit and uncharged, exactly as if each descriptor
    /// had been checked alone in order.
    /// </summary>
    private async ValueTask<Group[]> WithinLimitAsync(DescriptorMatch[] matches, RateLimitCheck[] checks, int count, CancellationToken cancellationToken)
    {
        var outcomes = new StoreOutcome[count];
        await _store.DecideAsync(checks.AsMemory(0, count), outcomes, cancellationToken).ConfigureAwait(false);

        // A check's cost is its descriptors' summed hits.
        var results = new Group[outcomes.Length];
        for (var c = 0; c < outcomes.Length; c++)
        {
            var total = checks[c].Cost;
            var outcome = outcomes[c].Outcome;
            var failure = outcomes[c].IsStoreFailure;
            if (outcome.IsAllowed)
            {
                var before = outcome.Remaining > long.MaxValue - total ? long.MaxValue : outcome.Remaining + total;
                results[c] = new Group(before, long.MaxValue, outcome.ResetAfterMicroseconds, failure);
                continue;
            }

            results[c] = new Group(outcome.Remaining, -1, outcome.ResetAfterMicroseconds, failure);
            if (failure || outcome.Remaining < 0 || outcome.Remaining >= total)
            {
                continue;
            }

            // The longest prefix of the group's descriptors within what remained (a lone descriptor's prefix is its
            // whole cost, which did not fit: none).
            long fit = 0;
            foreach (var matched in matches)
            {
                if (matched.CheckIndex == c && matched.Prefix <= outcome.Remaining)
                {
                    fit = Math.Max(fit, matched.Prefix);
                }
            }

            if (fit == 0)
            {
                results[c] = results[c] with { Fits = 0 };
                continue;
            }

            var retry = new StoreOutcome[1];
            await _store.DecideAsync(new[] { checks[c] with { Cost = fit } }, retry, cancellationToken).ConfigureAwait(false);
            var charged = retry[0].Outcome;
            if (charged.IsAllowed)
            {
                results[c] = new Group(charged.Remaining + fit, fit, charged.ResetAfterMicroseconds, retry[0].IsStoreFailure);
            }
        }

        return results;
    }
}
