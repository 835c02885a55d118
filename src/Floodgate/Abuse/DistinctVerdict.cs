using Floodgate.Rules;

namespace Floodgate.Abuse;

/// <summary>
/// What the distinct rules say of a request (<see cref="Engine.RateLimitEngine.CountDistinctAsync"/>): nothing, or the
/// first enforced rule whose key is over, to reject or ban. Flagged rules are reported by the engine and never here.
/// </summary>
/// <param name="Rule">The rule over its limit; <see langword="null"/> when none is.</param>
/// <param name="Count">The distinct values its key has shown in the window.</param>
/// <param name="WindowEnd">When the window ends, and the key's count with it.</param>
public readonly record struct DistinctVerdict(RateLimitRule? Rule, long Count, DateTimeOffset WindowEnd)
{
    /// <summary>Whether a rule is over and enforces: the request is to be rejected or its key banned.</summary>
    public bool IsOver => Rule is not null;

    /// <summary>The rule's distinct settings.</summary>
    public DistinctCounting? Counting => Rule?.Distinct;
}
