namespace Floodgate.Stores;

/// <summary>
/// Helpers for a store's <see cref="IRateLimitStore.DecideStagesAsync"/>: the argument checks every store makes, whether a
/// decided stage stops the stages after it, and the stage-by-stage default for a store that decides one batch at a time.
/// </summary>
public static class StagedDecisions
{
    /// <summary>Checks that <paramref name="stageEnds"/> partitions <paramref name="checkCount"/> checks into non-empty stages.</summary>
    /// <exception cref="ArgumentException">It does not, or there are fewer outcomes than checks.</exception>
    public static void Validate(int checkCount, ReadOnlySpan<int> stageEnds, int outcomeCount)
    {
        if (outcomeCount < checkCount)
        {
            throw new ArgumentException("There must be an outcome for every check.", nameof(outcomeCount));
        }

        var start = 0;
        foreach (var end in stageEnds)
        {
            if (end <= start || end > checkCount)
            {
                throw new ArgumentException($"Stage ends must increase from 1 to the number of checks ({checkCount}); got {string.Join(", ", stageEnds.ToArray())}.", nameof(stageEnds));
            }

            start = end;
        }

        if (start != checkCount)
        {
            throw new ArgumentException($"The last stage must end at the number of checks ({checkCount}); it ends at {start}.", nameof(stageEnds));
        }
    }

    /// <summary>
    /// Whether any enforced check of a decided stage was denied (a denied probe counts unless it is a shadow): then the
    /// stages after it are neither decided nor charged.
    /// </summary>
    public static bool Rejects(ReadOnlySpan<RateLimitCheck> checks, ReadOnlySpan<StoreOutcome> outcomes)
    {
        for (var i = 0; i < checks.Length; i++)
        {
            if (!outcomes[i].Outcome.IsAllowed && !checks[i].IsShadow)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Decides the stages one <see cref="IRateLimitStore.DecideAsync"/> call at a time, stopping after the first that
    /// rejects; completes synchronously when every call does.
    /// </summary>
    /// <param name="store">The store.</param>
    /// <param name="checks">The checks of every stage, stage after stage.</param>
    /// <param name="stageEnds">For each stage, the index just past its last check.</param>
    /// <param name="outcomes">At least as long as <paramref name="checks"/>.</param>
    /// <param name="cancellationToken">Cancels waiting for a remote store.</param>
    /// <returns>How many stages were decided.</returns>
    public static ValueTask<int> DecideInTurnAsync(IRateLimitStore store, ReadOnlyMemory<RateLimitCheck> checks, ReadOnlyMemory<int> stageEnds, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        Validate(checks.Length, stageEnds.Span, outcomes.Length);
        var start = 0;
        for (var stage = 0; stage < stageEnds.Length; stage++)
        {
            var end = stageEnds.Span[stage];
            var pending = store.DecideAsync(checks[start..end], outcomes[start..end], cancellationToken);
            if (!pending.IsCompletedSuccessfully)
            {
                return DecideRestAsync(store, checks, stageEnds, outcomes, stage, pending, cancellationToken);
            }

            pending.GetAwaiter().GetResult();
            if (Rejects(checks.Span[start..end], outcomes.Span[start..end]))
            {
                return new ValueTask<int>(stage + 1);
            }

            start = end;
        }

        return new ValueTask<int>(stageEnds.Length);
    }

    private static async ValueTask<int> DecideRestAsync(IRateLimitStore store, ReadOnlyMemory<RateLimitCheck> checks, ReadOnlyMemory<int> stageEnds, Memory<StoreOutcome> outcomes, int stage, ValueTask pending, CancellationToken cancellationToken)
    {
        var start = stage == 0 ? 0 : stageEnds.Span[stage - 1];
        while (true)
        {
            await pending.ConfigureAwait(false);
            var end = stageEnds.Span[stage];
            if (Rejects(checks.Span[start..end], outcomes.Span[start..end]))
            {
                return stage + 1;
            }

            if (++stage == stageEnds.Length)
            {
                return stage;
            }

            start = end;
            end = stageEnds.Span[stage];
            pending = store.DecideAsync(checks[start..end], outcomes[start..end], cancellationToken);
        }
    }
}
