using Floodgate.Algorithms;
using Floodgate.Limits;

namespace Floodgate.Logging;

/// <summary>
/// A budget of log lines, itself a token bucket: at most <see cref="Burst"/> lines at once and
/// <see cref="LinesPerSecond"/> a second, so a flood of events cannot flood the logs. The lines refused are counted and
/// handed to the next line written. Thread-safe.
/// </summary>
/// <remarks>
/// Shared source (src/Shared), compiled into each project that logs within a budget: the engine's rejections, the
/// identity resolver's refused tokens and the gateway's forwarding failures each have a budget of this size.
/// </remarks>
internal sealed class LogBudget(TimeProvider time)
{
    /// <summary>How many lines a second the budget refills, at most.</summary>
    public const int LinesPerSecond = 10;

    /// <summary>How many lines the budget allows at once, at most.</summary>
    public const int Burst = 20;

    private static readonly Limit Lines = Limit.Gcra(new Rate(LinesPerSecond, 1, RateUnit.Second), Burst);

    private long _tat;
    private long _suppressed;

    /// <summary>Takes a line from the budget.</summary>
    /// <param name="suppressed">When a line may be written, how many were refused since the last one written.</param>
    /// <returns><see langword="true"/> when a line may be written; <see langword="false"/>, counting it, when the budget is spent.</returns>
    public bool TryTake(out long suppressed)
    {
        var now = (time.GetUtcNow().UtcTicks - DateTime.UnixEpoch.Ticks) / TimeSpan.TicksPerMicrosecond;
        while (true)
        {
            var tat = Volatile.Read(ref _tat);
            var outcome = LimitMath.Decide(Lines, new LimitState(tat, 0, 0), now, 1, out var next);
            if (!outcome.IsAllowed)
            {
                Interlocked.Increment(ref _suppressed);
                suppressed = 0;
                return false;
            }

            if (Interlocked.CompareExchange(ref _tat, next.A, tat) == tat)
            {
                suppressed = Interlocked.Exchange(ref _suppressed, 0);
                return true;
            }
        }
    }
}
