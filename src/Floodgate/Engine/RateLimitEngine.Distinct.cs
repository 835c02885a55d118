using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Floodgate.Abuse;
using Floodgate.Events;
using Floodgate.Keys;
using Floodgate.Logging;
using Floodgate.Rules;
using Microsoft.Extensions.Logging;

namespace Floodgate.Engine;

// Distinct rules: how many distinct IPs, networks or subjects one key has shown in a window (docs/edge.md).
public sealed partial class RateLimitEngine
{
    // The keys flagged in their current window, so a flagged key raises one event per window on this replica (the
    // threshold ledger then makes it one across replicas). Bounded: cleared whole when full.
    private const int MaxFlagged = 10_000;

    private readonly Counter<long> _distinctOver;
    private readonly Counter<long> _distinctFailures;
    private readonly ConcurrentDictionary<(StoreKey Key, long Window), byte> _flagged = new();
    private IDistinctStore? _distinctStore;

    /// <summary>
    /// Where distinct rules keep their sets: in process by default (<see cref="MemoryDistinctStore"/>, made when first
    /// needed), or in Redis so that every replica counts the same sets.
    /// </summary>
    public IDistinctStore DistinctStore
    {
        get => Volatile.Read(ref _distinctStore) ?? InitDistinct();
        set => Volatile.Write(ref _distinctStore, value ?? throw new ArgumentNullException(nameof(value)));
    }

    /// <summary>
    /// Counts <paramref name="request"/> in the sets of the distinct rules of <paramref name="policy"/> that apply to it
    /// (one store call each, sent together), and answers the first enforced rule whose key is over its limit.
    /// </summary>
    /// <remarks>
    /// A key is over while its set holds more values than the rule's limit: every request of the key is then over until
    /// the window ends, whatever value it shows. A flagging rule, a shadow rule, and every rule under
    /// <see cref="RateLimitPolicy.ShadowAll"/>, only report: on <c>floodgate.distinct.over</c> (tags <c>rule</c>,
    /// <c>action</c>), in the log (within the rejection log budget) and, once per key and window, as a threshold event
    /// at 100 % to <see cref="ThresholdObserver"/>. A store that fails lets the request through, counted on
    /// <c>floodgate.distinct.failures</c>. A policy without distinct rules costs nothing.
    /// </remarks>
    /// <param name="policy">The policy the request started with.</param>
    /// <param name="request">The request, with its identity when the rules read it.</param>
    /// <param name="cancellationToken">Cancels waiting for a remote store.</param>
    public ValueTask<DistinctVerdict> CountDistinctAsync(RateLimitPolicy policy, IRequestContext request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(request);
        var rules = policy.DistinctRules;
        if (rules.Length == 0)
        {
            return default;
        }

        var store = DistinctStore;
        var now = _time.GetUtcNow();
        DistinctVerdict verdict = default;
        List<(RateLimitRule Rule, StoreKey Key, DateTimeOffset Start, ValueTask<long> Count)>? pending = null;
        foreach (var rule in rules)
        {
            var limit = rule.Limit!;
            if (!rule.Match.IsMatch(request)
                || !RuleKeys.TryBuild(rule, limit, request, policy.Ipv6PrefixLength, out var key)
                || !DistinctValues.TryHash(rule.Distinct!, request, out var value))
            {
                continue;
            }

            var start = WindowStart(now, limit.Rate.Period);
            ValueTask<long> count;
            try
            {
                count = store.AddAsync(key, value, start, limit.Rate.Period, cancellationToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                _distinctFailures.Add(1, new KeyValuePair<string, object?>("rule", rule.Name));
                continue;
            }

            if (pending is null && count.IsCompletedSuccessfully)
            {
                if (!verdict.IsOver && Judge(policy, rule, key, start, count.Result, request, now) is { IsOver: true } over)
                {
                    verdict = over;
                }

                continue;
            }

            (pending ??= []).Add((rule, key, start, count));
        }

        return pending is null ? new ValueTask<DistinctVerdict>(verdict) : WaitDistinctAsync(policy, request, now, verdict, pending);
    }

    private async ValueTask<DistinctVerdict> WaitDistinctAsync(RateLimitPolicy policy, IRequestContext request, DateTimeOffset now, DistinctVerdict verdict, List<(RateLimitRule Rule, StoreKey Key, DateTimeOffset Start, ValueTask<long> Count)> pending)
    {
        // Every call is already on its way: each is awaited, so none is left unobserved, and the first over wins.
        foreach (var (rule, key, start, count) in pending)
        {
            long counted;
            try
            {
                counted = await count.ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                _distinctFailures.Add(1, new KeyValuePair<string, object?>("rule", rule.Name));
                LogDistinctFailed(_logger, rule.Name, e);
                continue;
            }

            if (!verdict.IsOver && Judge(policy, rule, key, start, counted, request, now) is { IsOver: true } over)
            {
                verdict = over;
            }
        }

        return verdict;
    }

    /// <summary>The verdict of one rule's count: over and enforced, or reported only, or under.</summary>
    private DistinctVerdict Judge(RateLimitPolicy policy, RateLimitRule rule, StoreKey key, DateTimeOffset start, long count, IRequestContext request, DateTimeOffset now)
    {
        var limit = rule.Limit!;
        if (count <= limit.Amount)
        {
            return default;
        }

        var counting = rule.Distinct!;
        var end = start + limit.Rate.Period;
        var flagOnly = counting.Action == DistinctAction.Flag || rule.Mode == RuleMode.Shadow || policy.ShadowAll;
        var action = flagOnly ? "flag" : counting.Action == DistinctAction.Ban ? "ban" : "reject";
        _distinctOver.Add(1, new KeyValuePair<string, object?>("rule", rule.Name), new KeyValuePair<string, object?>("action", action));
        if (_flagged.Count >= MaxFlagged)
        {
            _flagged.Clear();
        }

        if (_flagged.TryAdd((key, start.UtcTicks), 0))
        {
            // Once per key and window: the log line and the threshold event name it.
            var identity = LogValues.Escape(request.Subject ?? request.ClientIp?.ToString() ?? "anonymous");
            if (_logger.IsEnabled(LogLevel.Warning) && _logBudget.TryTake(out var suppressed))
            {
                LogDistinctOver(_logger, rule.Name, identity, count, counting.Of.ToString(), limit.Amount, action, suppressed);
            }

            Volatile.Read(ref _thresholdObserver)?.OnCrossed(new ThresholdCrossing(
                rule, KeyName(rule, request, policy), request.Plan, 100, count, limit.Amount, limit.Rate.ToString(), start, end, now));
        }

        return flagOnly ? default : new DistinctVerdict(rule, count, end);
    }

    /// <summary>The window holding <paramref name="now"/>: aligned to the Unix epoch in multiples of the period, as fixed_window's.</summary>
    internal static DateTimeOffset WindowStart(DateTimeOffset now, TimeSpan period)
    {
        var since = now.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks;
        return new DateTimeOffset(now.UtcTicks - (since % period.Ticks), TimeSpan.Zero);
    }

    /// <summary>What the rule's key names, for events: the subject or client of a one-part key, else the parts joined.</summary>
    private static string KeyName(RateLimitRule rule, IRequestContext request, RateLimitPolicy policy)
    {
        var parts = new List<string>(rule.Key.Count);
        foreach (var part in rule.Key)
        {
            parts.Add(part.Kind switch
            {
                KeyPartKind.ClientIp => request.ClientIp is { } ip ? ClientAddress.Name(ip, policy.Ipv6PrefixLength) : string.Empty,
                KeyPartKind.Subject => request.Subject ?? string.Empty,
                KeyPartKind.Claim => request.GetClaim(part.Name!) ?? string.Empty,
                KeyPartKind.Header => request.GetHeader(part.Name!) ?? string.Empty,
                _ => part.ToString(),
            });
        }

        return string.Join(' ', parts);
    }

    private IDistinctStore InitDistinct()
    {
        Interlocked.CompareExchange(ref _distinctStore, new MemoryDistinctStore(), null);
        return _distinctStore;
    }

    [LoggerMessage(30, LogLevel.Warning, "Distinct rule {Rule}: {Identity} showed {Count} distinct {Part} values, over the limit of {Limit}; action {Action} ({Suppressed} earlier lines not logged)")]
    private static partial void LogDistinctOver(ILogger logger, string rule, string identity, long count, string part, long limit, string action, long suppressed);

    [LoggerMessage(31, LogLevel.Warning, "Distinct rule {Rule}: the store could not count the request, which goes on uncounted")]
    private static partial void LogDistinctFailed(ILogger logger, string rule, Exception exception);
}
