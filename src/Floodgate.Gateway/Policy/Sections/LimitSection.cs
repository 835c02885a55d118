using Floodgate.Limits;
using Floodgate.Rules;
using YamlDotNet.RepresentationModel;

namespace Floodgate.Gateway.Policy.Sections;

/// <summary>
/// A rule's limit: <c>limit</c> (a rate, or <c>plan.&lt;field&gt;</c>) or <c>concurrency</c>, with what refines it:
/// <c>algorithm</c>, <c>burst</c>, <c>lease_timeout</c>, <c>calendar</c>, <c>time_zone</c>, <c>leased_slice</c>,
/// <c>max_delay</c>, and a concurrency limit's queue: <c>queue</c>, <c>queue_timeout</c>, <c>queue_order</c>.
/// </summary>
internal sealed class LimitSection(YamlReader reader, YamlMappingNode map, string field, RateLimitTier tier, PlanSet plans)
{
    /// <summary>The rule's one limit, or its limit by plan; neither when it is refused (the errors say why).</summary>
    public (Limit? Fixed, Dictionary<string, Limit>? ByPlan) Read()
    {
        var burst = reader.Integer(map, "burst", field, 1, long.MaxValue / 2);
        var algorithm = reader.Enum(
            map,
            "algorithm",
            field,
            ("gcra", LimitAlgorithm.Gcra),
            ("token_bucket", LimitAlgorithm.Gcra),
            ("sliding_window", LimitAlgorithm.SlidingWindow),
            ("fixed_window", LimitAlgorithm.FixedWindow),
            ("quota", LimitAlgorithm.Quota),
            ("concurrency", LimitAlgorithm.Concurrency),
            ("sliding_log", LimitAlgorithm.SlidingLog),
            ("leaky_bucket", LimitAlgorithm.LeakyBucket));
        var concurrency = reader.Integer(map, "concurrency", field, 1, 100_000_000);
        var leaseTimeout = reader.Duration(map, "lease_timeout", field, TimeSpan.FromMilliseconds(1), TimeSpan.FromHours(24));
        var maxDelay = reader.Duration(map, "max_delay", field, TimeSpan.FromMilliseconds(1), TimeSpan.FromHours(1));
        if (maxDelay is not null && algorithm != LimitAlgorithm.LeakyBucket)
        {
            reader.Error(YamlReader.Get(map, "max_delay"), $"{field}.max_delay", "max_delay applies only to algorithm: leaky_bucket, which it makes a queue.");
        }
        else if (maxDelay is not null && burst is not null)
        {
            reader.Error(YamlReader.Get(map, "max_delay"), $"{field}.max_delay", "give burst (a leaky_bucket meter, rejecting what does not fit) or max_delay (a queue, delaying it), not both.");
        }

        var limitText = reader.String(map, "limit", field);
        var slice = reader.Integer(map, "leased_slice", field, 1, long.MaxValue / 2);
        var quotaCalendar = ReadCalendar(algorithm);

        Limit Build(Rate rate, long? planBurst, YamlNode? at)
        {
            var limit = BuildStrict(rate, planBurst, at);
            return slice is { } leased ? limit.WithLeasedSlice(leased) : limit;
        }

        Limit BuildStrict(Rate rate, long? planBurst, YamlNode? at)
        {
            switch (algorithm ?? LimitAlgorithm.Gcra)
            {
                case LimitAlgorithm.Gcra:
                    return Limit.Gcra(rate, burst ?? planBurst);
                case LimitAlgorithm.LeakyBucket when maxDelay is { } delay:
                    return Limit.LeakyBucketQueue(rate, delay);
                case LimitAlgorithm.LeakyBucket:
                    return Limit.LeakyBucket(rate, burst ?? planBurst);
                case LimitAlgorithm.Quota:
                    return Limit.Quota(rate, quotaCalendar);
                case LimitAlgorithm.Concurrency:
                    throw new ArgumentException("algorithm: concurrency takes 'concurrency: <permits>', not a rate.");
                default:
                    if (burst is not null)
                    {
                        reader.Error(at, $"{field}.burst", "burst applies only to gcra (token bucket) and leaky_bucket limits.");
                    }

                    return algorithm switch
                    {
                        LimitAlgorithm.FixedWindow => Limit.FixedWindow(rate),
                        LimitAlgorithm.SlidingLog => Limit.SlidingLog(rate),
                        _ => Limit.SlidingWindow(rate),
                    };
            }
        }

        try
        {
            if (concurrency is { } permits)
            {
                if (limitText is not null)
                {
                    reader.Error(YamlReader.Get(map, "limit"), $"{field}.limit", "give limit or concurrency, not both.");
                }
                else if (algorithm is not null and not LimitAlgorithm.Concurrency)
                {
                    reader.Error(YamlReader.Get(map, "algorithm"), $"{field}.algorithm", "a concurrency rule takes no other algorithm.");
                }
                else if (slice is not null)
                {
                    reader.Error(YamlReader.Get(map, "leased_slice"), $"{field}.leased_slice", "a concurrency limit cannot be leased: its permits are held, not spent.");
                }
                else if (ReadQueue(Limit.Concurrency(permits, leaseTimeout)) is { } limit)
                {
                    return (limit, null);
                }
            }
            else if ((YamlReader.Get(map, "queue") ?? YamlReader.Get(map, "queue_timeout") ?? YamlReader.Get(map, "queue_order")) is { } queueNode)
            {
                reader.Error(queueNode, $"{field}.queue", "queue, queue_timeout and queue_order apply only to a concurrency limit (concurrency: <permits>); a rate limit that should wait is a leaky_bucket with max_delay.");
            }
            else if (limitText is null)
            {
                reader.Error(map, $"{field}.limit", "every rule needs a limit (such as 300/min or plan.per_user) or concurrency.");
            }
            else if (limitText.StartsWith("plan.", StringComparison.Ordinal) && tier == RateLimitTier.Edge)
            {
                reader.Error(YamlReader.Get(map, "limit"), $"{field}.limit", $"an edge rule cannot take its limit from a plan ('{limitText}'): the edge runs before identity is resolved, so the plan is unknown. Move the rule to the user tier, or give a rate.");
            }
            else if (limitText.StartsWith("plan.", StringComparison.Ordinal))
            {
                var planField = limitText[5..];
                var limits = new Dictionary<string, Limit>(StringComparer.Ordinal);
                foreach (var (planName, plan) in plans.ByName)
                {
                    if (plan.Rates.TryGetValue(planField, out var rate))
                    {
                        limits[planName] = Build(rate, plan.Burst, YamlReader.Get(map, "limit"));
                    }
                }

                if (limits.Count > 0)
                {
                    return (null, limits);
                }

                reader.Error(YamlReader.Get(map, "limit"), $"{field}.limit", plans.ByName.Count == 0
                    ? $"'{limitText}' names a plan field, but the policy has no plans."
                    : $"no plan has the field '{planField}'; the plans are: {string.Join(", ", plans.ByName.Keys)}.");
            }
            else if (Rate.TryParse(limitText, out var rate, out var error))
            {
                return (Build(rate, null, YamlReader.Get(map, "limit")), null);
            }
            else
            {
                reader.Error(YamlReader.Get(map, "limit"), $"{field}.limit", error);
            }
        }
        catch (InvalidOperationException e)
        {
            reader.Error(YamlReader.Get(map, "leased_slice") ?? map, $"{field}.leased_slice", e.Message);
        }
        catch (ArgumentException e) when (e.ParamName == "slice" && YamlReader.Get(map, "leased_slice") is { } sliceNode)
        {
            reader.Error(sliceNode, $"{field}.leased_slice", PolicyLoader.MessageOf(e));
        }
        catch (ArgumentException e) when (e.ParamName == "maxDelay" && YamlReader.Get(map, "max_delay") is { } delayNode)
        {
            reader.Error(delayNode, $"{field}.max_delay", PolicyLoader.MessageOf(e));
        }
        catch (ArgumentException e)
        {
            reader.Error(YamlReader.Get(map, "limit") ?? YamlReader.Get(map, "concurrency") ?? map, $"{field}.limit", PolicyLoader.MessageOf(e));
        }

        return (null, null);
    }

    /// <summary>
    /// <paramref name="limit"/> with the queue the rule gives it (<c>queue</c> waiters at most, each for at most
    /// <c>queue_timeout</c>, woken in <c>queue_order</c>), or as it is without <c>queue</c>; <see langword="null"/> when
    /// the queue is refused (the errors say why).
    /// </summary>
    private Limit? ReadQueue(Limit limit)
    {
        var size = reader.Integer(map, "queue", field, 1, Limit.MaxQueueSize);
        var timeout = reader.Duration(map, "queue_timeout", field, TimeSpan.FromMilliseconds(1), Limit.MaxQueueTimeout);
        var order = reader.Enum(map, "queue_order", field, ("fifo", QueueOrder.Fifo), ("lifo", QueueOrder.Lifo));
        if (size is null)
        {
            if ((YamlReader.Get(map, "queue_timeout") ?? YamlReader.Get(map, "queue_order")) is { } node)
            {
                reader.Error(node, $"{field}.queue", "queue_timeout and queue_order need queue: how many requests may wait for a permit.");
                return null;
            }

            return YamlReader.Get(map, "queue") is null ? limit : null;
        }

        if (timeout is null)
        {
            if (YamlReader.Get(map, "queue_timeout") is null)
            {
                reader.Error(YamlReader.Get(map, "queue"), $"{field}.queue_timeout", "a queue needs queue_timeout: the longest a request waits for a permit, such as 2s (at most 10 minutes).");
            }

            return null;
        }

        if (YamlReader.Get(map, "queue_order") is not null && order is null)
        {
            return null;
        }

        return limit.WithQueue((int)size.Value, timeout.Value, order ?? QueueOrder.Fifo);
    }

    /// <summary>The calendar of a quota (UTC unless <c>time_zone</c> says otherwise; none with <c>calendar: false</c>).</summary>
    private QuotaCalendar? ReadCalendar(LimitAlgorithm? algorithm)
    {
        var calendar = reader.Bool(map, "calendar", field);
        var timeZone = reader.String(map, "time_zone", field);
        if (algorithm == LimitAlgorithm.Quota && calendar != false)
        {
            try
            {
                return timeZone is null ? QuotaCalendar.Utc : QuotaCalendar.ForTimeZone(timeZone);
            }
            catch (Exception e) when (e is TimeZoneNotFoundException or InvalidTimeZoneException or ArgumentException)
            {
                reader.Error(YamlReader.Get(map, "time_zone"), $"{field}.time_zone", $"'{timeZone}' is not a time zone: use an IANA name such as Europe/Paris or UTC.");
            }
        }
        else if ((calendar is not null || timeZone is not null) && algorithm != LimitAlgorithm.Quota)
        {
            reader.Error(map, $"{field}.calendar", "calendar and time_zone apply only to algorithm: quota.");
        }

        return null;
    }
}
