using System.Globalization;
using Floodgate.Algorithms;
using Floodgate.Limits;
using Floodgate.Stores;
using StackExchange.Redis;

namespace Floodgate.Redis;

/// <summary>
/// The wire layout of decide.lua: the arguments (ARGV) a call sends and the answer it gets back. The store writes and
/// reads them through this type only; decide.lua names the same offsets with the same values, in upper snake case
/// (<see cref="CheckStride"/> is <c>CHECK_STRIDE</c>), and DecideProtocolTests checks that both sides agree.
/// </summary>
/// <remarks>
/// <para>
/// Every offset counts from 0 within its part, as a C# array does; Lua counts from 1, so the script adds an offset to
/// the 1-based position where its part starts.
/// </para>
/// <para>
/// ARGV: a header (<see cref="ArgNow"/>, <see cref="ArgHead"/>), then per group a header (<see cref="GroupStage"/>,
/// <see cref="GroupChecks"/>) and per check a stride of <see cref="CheckStride"/> values (<see cref="Algorithm"/> to
/// <see cref="Slice"/>). A run of coalesced calls keeps one header, with minus the number of calls as its head, and then
/// each call's own arguments after its now.
/// </para>
/// <para>
/// The answer: a header (<see cref="ReplyStatus"/>, <see cref="ReplyNow"/>, <see cref="ReplyEvaluated"/>), then per
/// check of the groups evaluated a stride of <see cref="ReplyStride"/> values (<see cref="Allowed"/> to
/// <see cref="Granted"/>). A calendar skew is the header's first two values alone. A run's answer is an array of its
/// calls' answers.
/// </para>
/// </remarks>
internal static class DecideProtocol
{
    /// <summary>Now in microseconds since the Unix epoch, or '' for the server's clock (<c>TIME</c>); tests pass a value.</summary>
    public const int ArgNow = 0;

    /// <summary>A call's number of groups; for a run of coalesced calls, minus the number of calls.</summary>
    public const int ArgHead = 1;

    /// <summary>How many values the ARGV header holds: where a call's first group starts.</summary>
    public const int ArgHeader = 2;

    /// <summary>The group's stage: the script stops after the first stage that an enforced check denies.</summary>
    public const int GroupStage = 0;

    /// <summary>How many checks (strides) follow the group's header.</summary>
    public const int GroupChecks = 1;

    /// <summary>How many values a group's header holds: where its first check starts.</summary>
    public const int GroupHeader = 2;

    /// <summary>
    /// The algorithm's code: 0 gcra, 1 sliding window, 2 fixed window, 3 quota, 4 concurrency, 5 sliding log. A leaky
    /// bucket (a meter) is sent as gcra: the same function, under keys of its own.
    /// </summary>
    public const int Algorithm = 0;

    /// <summary>The check's cost.</summary>
    public const int Cost = 1;

    /// <summary>
    /// 0 enforce, 1 shadow, 2 probe (decided with its cost, never written, its denial enforced), 3 shadow probe; plus 4
    /// when always charged (<see cref="RateLimitCheck.IsAlwaysCharged"/>; never with a probe, nor for concurrency).
    /// </summary>
    public const int Mode = 2;

    /// <summary>Gcra: the interval; the windows and the sliding log: the window; quota: the amount; concurrency: the permits.</summary>
    public const int P1 = 3;

    /// <summary>Gcra: the tolerance; the windows and the sliding log: the amount; quota: the period; concurrency: the lease timeout.</summary>
    public const int P2 = 4;

    /// <summary>Gcra: the burst; quota: 1 for a calendar period, else 0; concurrency: the lease member.</summary>
    public const int P3 = 5;

    /// <summary>A calendar quota: the start of the period around now, by the store's clock.</summary>
    public const int PeriodStart = 6;

    /// <summary>A calendar quota: the end of that period, the start of the next.</summary>
    public const int PeriodEnd = 7;

    /// <summary>A calendar quota: the end of the next period.</summary>
    public const int NextPeriodEnd = 8;

    /// <summary>A leased slice to take when the limit grants it, else 0.</summary>
    public const int Slice = 9;

    /// <summary>How many values a check's stride holds.</summary>
    public const int CheckStride = 10;

    /// <summary><see cref="StatusDecided"/> or <see cref="StatusCalendarSkew"/>.</summary>
    public const int ReplyStatus = 0;

    /// <summary>The server's now, in microseconds since the Unix epoch (the test's, when it gave one).</summary>
    public const int ReplyNow = 1;

    /// <summary>How many groups were evaluated: those of the stages up to the first that rejects.</summary>
    public const int ReplyEvaluated = 2;

    /// <summary>How many values the answer's header holds: where its first check starts.</summary>
    public const int ReplyHeader = 3;

    /// <summary>1 when the check is allowed, else 0.</summary>
    public const int Allowed = 0;

    /// <summary>The state before the decision (<see cref="LimitState.A"/>; for concurrency the permits in flight; for a sliding log the entries in the window).</summary>
    public const int StateA = 1;

    /// <summary>The state before the decision (<see cref="LimitState.B"/>; for concurrency the earliest expiry; for a sliding log the blocking entry's time).</summary>
    public const int StateB = 2;

    /// <summary>The state before the decision (<see cref="LimitState.C"/>; for concurrency the latest expiry; for a sliding log the newest entry's time).</summary>
    public const int StateC = 3;

    /// <summary>What was granted: the cost, a leased slice, or 0 (as for a probe).</summary>
    public const int Granted = 4;

    /// <summary>How many values a check's answer holds.</summary>
    public const int ReplyStride = 5;

    /// <summary>The call was decided.</summary>
    public const int StatusDecided = 1;

    /// <summary>A calendar quota's periods, by the store's clock, miss the server's now: nothing was written; send again.</summary>
    public const int StatusCalendarSkew = -1;

    // The codes of the algorithms and the bits of the mode: values, not offsets.
    private const int Gcra = 0;
    private const int SlidingWindow = 1;
    private const int FixedWindow = 2;
    private const int Quota = 3;
    private const int Concurrency = 4;
    private const int SlidingLog = 5;
    private const int ModeShadow = 1;
    private const int ModeProbe = 2;
    private const int ModeAlwaysCharged = 4;

    /// <summary>How many arguments a call of <paramref name="groups"/> groups holding <paramref name="checks"/> checks has.</summary>
    public static int ArgumentCount(int groups, int checks) => ArgHeader + (GroupHeader * groups) + (CheckStride * checks);

    /// <summary>Writes a call's header; returns where its first group starts.</summary>
    /// <param name="values">The call's arguments.</param>
    /// <param name="now">A test's server time, or <see langword="null"/> for the server's clock.</param>
    /// <param name="groups">The call's number of groups.</param>
    public static int WriteHeader(RedisValue[] values, long? now, int groups)
    {
        values[ArgNow] = now is { } given ? given : RedisValue.EmptyString;
        values[ArgHead] = groups;
        return ArgHeader;
    }

    /// <summary>Writes the header of a group at <paramref name="at"/>; returns where its first check starts.</summary>
    public static int WriteGroup(RedisValue[] values, int at, int stage, int checks)
    {
        values[at + GroupStage] = stage;
        values[at + GroupChecks] = checks;
        return at + GroupHeader;
    }

    /// <summary>Writes <paramref name="check"/>'s stride at <paramref name="at"/>; returns where the next check starts.</summary>
    /// <param name="values">The call's arguments.</param>
    /// <param name="at">Where the stride starts.</param>
    /// <param name="check">The check.</param>
    /// <param name="slice">The leased slice to take, or 0.</param>
    /// <param name="leaseId">A concurrency check's lease, should it be granted.</param>
    /// <param name="calendarNow">The time a calendar quota's periods are computed around, in microseconds since the Unix epoch.</param>
    public static int WriteCheck(RedisValue[] values, int at, in RateLimitCheck check, long slice, long leaseId, long calendarNow)
    {
        var limit = check.Limit;
        // Past every amount and burst, so decided alike, and small enough that no sum or product the script forms with
        // it wraps in Lua 5.4's integers (Garnet's) or loses the comparison in Lua 5.1's doubles.
        values[at + Cost] = Math.Min(check.Cost, Limit.MaxAmount + 1);
        values[at + Mode] = (check.IsShadow ? ModeShadow : 0) + (check.IsProbe ? ModeProbe : 0)
            + (check.IsAlwaysCharged && !check.IsProbe && limit.Algorithm != LimitAlgorithm.Concurrency ? ModeAlwaysCharged : 0);
        long p1 = 0, p2 = 0, p3 = 0, start = 0, end = 0, nextEnd = 0;
        switch (limit.Algorithm)
        {
            case LimitAlgorithm.Gcra or LimitAlgorithm.LeakyBucket:
                values[at + Algorithm] = Gcra;
                (p1, p2, p3) = (limit.IntervalMicroseconds, limit.ToleranceMicroseconds, limit.Burst);
                break;
            case LimitAlgorithm.SlidingWindow:
                values[at + Algorithm] = SlidingWindow;
                (p1, p2) = (limit.PeriodMicroseconds, limit.Amount);
                break;
            case LimitAlgorithm.SlidingLog:
                values[at + Algorithm] = SlidingLog;
                (p1, p2) = (limit.PeriodMicroseconds, limit.Amount);
                break;
            case LimitAlgorithm.FixedWindow:
                values[at + Algorithm] = FixedWindow;
                (p1, p2) = (limit.PeriodMicroseconds, limit.Amount);
                break;
            case LimitAlgorithm.Quota:
                values[at + Algorithm] = Quota;
                (p1, p2) = (limit.Amount, limit.PeriodMicroseconds);
                if (limit.Calendar is not null)
                {
                    p3 = 1;
                    (start, end) = limit.CalendarPeriod(calendarNow);
                    nextEnd = limit.CalendarPeriod(end).End;
                }

                break;
            default:
                // Concurrency: no slice, no calendar.
                values[at + Algorithm] = Concurrency;
                values[at + P1] = limit.Amount;
                values[at + P2] = limit.LeaseTimeoutMicroseconds;
                values[at + P3] = LeaseMember(leaseId, check.Cost);
                for (var f = P3 + 1; f < CheckStride; f++)
                {
                    values[at + f] = 0;
                }

                return at + CheckStride;
        }

        values[at + P1] = p1;
        values[at + P2] = p2;
        values[at + P3] = p3;
        values[at + PeriodStart] = start;
        values[at + PeriodEnd] = end;
        values[at + NextPeriodEnd] = nextEnd;
        values[at + Slice] = slice;
        return at + CheckStride;
    }

    /// <summary>A lease's member in a concurrency key's sorted set, as decide.lua grants it and release.lua removes it.</summary>
    public static RedisValue LeaseMember(long leaseId, long permits) =>
        string.Create(CultureInfo.InvariantCulture, $"{leaseId}:{permits}");

    /// <summary>
    /// Reads the header of a call's answer: <see langword="true"/> when it is a decision's (integers only, decided, at
    /// most <paramref name="groups"/> groups evaluated), with the server's now and how many groups were evaluated.
    /// </summary>
    public static bool TryReadDecided(RedisResult result, int groups, out long now, out int evaluated)
    {
        now = 0;
        evaluated = 0;
        if (result.Resp2Type != ResultType.Array || result.Length < ReplyHeader)
        {
            return false;
        }

        for (var i = 0; i < result.Length; i++)
        {
            if (result[i].Resp2Type != ResultType.Integer)
            {
                return false;
            }
        }

        var count = (long)result[ReplyEvaluated];
        if ((long)result[ReplyStatus] != StatusDecided || count < 0 || count > groups)
        {
            return false;
        }

        now = (long)result[ReplyNow];
        evaluated = (int)count;
        return true;
    }

    /// <summary>How long a decided answer is whose evaluated groups hold <paramref name="checks"/> checks.</summary>
    public static int ReplyLength(int checks) => ReplyHeader + (ReplyStride * checks);

    /// <summary>Whether the answer denies the call's check number <paramref name="check"/> (counted over its evaluated groups).</summary>
    public static bool IsDenied(RedisResult result, int check) => (long)result[ReplyHeader + (ReplyStride * check) + Allowed] == 0;

    /// <summary>The answer to the call's check number <paramref name="check"/> (counted over its evaluated groups).</summary>
    public static CheckReply ReadCheck(RedisResult result, int check)
    {
        var at = ReplyHeader + (ReplyStride * check);
        return new CheckReply(
            (long)result[at + Allowed] == 1,
            new LimitState((long)result[at + StateA], (long)result[at + StateB], (long)result[at + StateC]),
            (long)result[at + Granted]);
    }

    /// <summary>Whether the answer is a calendar skew: nothing was written, and the call is to be sent again.</summary>
    public static bool IsCalendarSkew(RedisResult result) =>
        result.Resp2Type == ResultType.Array && result.Length == ReplyNow + 1 && result[ReplyStatus].Resp2Type == ResultType.Integer
        && result[ReplyNow].Resp2Type == ResultType.Integer && (long)result[ReplyStatus] == StatusCalendarSkew;

    /// <summary>The server's now in an answer (a calendar skew's, to compute the periods by).</summary>
    public static long ReadNow(RedisResult result) => (long)result[ReplyNow];

    /// <summary>One check's answer.</summary>
    /// <param name="IsAllowed">Whether the script allowed it.</param>
    /// <param name="State">The key's state before the decision.</param>
    /// <param name="Granted">What was granted: the cost, a leased slice, or 0.</param>
    public readonly record struct CheckReply(bool IsAllowed, LimitState State, long Granted);
}
